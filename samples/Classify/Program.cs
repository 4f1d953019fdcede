// Classifies one image with MobileOne: `dotnet run --project samples/Classify -- <image> [<checkpoint>]`.
// The checkpoint may be Apple's (mobileone_s0.pth.tar) or timm's (model.safetensors), fused or not; without one the
// sample builds a randomly initialised MobileOne-S0 (seed 0), whose classes mean nothing, to show the API offline.
using MobileOne.Classification;
using MobileOne.Imaging;
using MobileOne.Inference;
using MobileOne.IO.Checkpoints;
using MobileOne.Models;
using MobileOne.Tensors;

if (args.Length is < 1 or > 2)
{
    Console.Error.WriteLine("usage: Classify <image> [<checkpoint>]");
    return 2;
}

string imagePath = args[0];
MobileOneNetwork network;
if (args.Length == 2)
{
    var loaded = ModelCheckpoint.Load(args[1]);     // format, key names and variant are read from the file
    network = loaded.Network;
    Console.WriteLine($"model: {loaded.Info.Variant} from {args[1]} ({loaded.Info.Format}, {(loaded.Info.Fused ? "fused" : "train-time, fused on load")})");
}
else
{
    network = MobileOneNetwork.Create(MobileOneConfig.S0);
    WeightInit.Initialize(network, seed: 0);
    Console.WriteLine("model: no checkpoint given, a randomly initialised MobileOne-S0 (seed 0): its classes are meaningless");
}

// timm's eval preprocessing for the variant (resize, centre crop, ImageNet mean/std) and the fused model on the engine.
var labels = ClassLabels.Default(network.Config.NumClasses, network.Config.InChans);
using var classifier = new ImageClassifier(network, ImagePreprocessing.ForModel(network.Config), labels, new InferenceOptions { Threads = 2 });

int size = classifier.Preprocessing.InputSize;
var input = new Tensor(1, classifier.Channels, size, size);
classifier.Preprocess(imagePath, ImageDecodeOptions.Default, input.Data);   // decode (SkiaSharp) + preprocess

Console.WriteLine($"image: {imagePath}");
var top = classifier.Classify(input, topK: 5)[0];
for (int i = 0; i < top.Count; i++)
{
    var score = top[i];
    Console.WriteLine($"{i + 1}. {score.Index,4} {score.Probability,7:P2} {score.Label ?? "class " + score.Index}");
}

return 0;

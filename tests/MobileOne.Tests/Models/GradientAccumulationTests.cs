using MobileOne.Models;
using MobileOne.Tensors;

namespace MobileOne.Tests.Models;

/// <summary>
/// Like PyTorch's, a backward pass adds to the gradients already there (gradient accumulation over several batches
/// relies on it): two passes over the same batch without ZeroGrad leave twice the gradient of one, through every
/// training path of a block (stem, depthwise moment passes in lanes and on patch stacks, pointwise moment passes,
/// the stacked 1x1 products and the per-branch ones on the last stage's 1x1 planes).
/// </summary>
public sealed class GradientAccumulationTests
{
    [Theory]
    [InlineData("units=2/3/3/2,widths=0.25/0.25/0.25/0.25,k=4,classes=10", 32, 32)]
    [InlineData("units=1/2/2/1,widths=0.25/0.25/1/1,k=3,classes=7", 4, 16)]
    public void Two_backward_passes_without_zero_grad_add_up(string spec, int batch, int size)
    {
        var config = MobileOneConfig.Parse(spec);
        var network = MobileOneNetwork.Create(config);
        WeightInit.Initialize(network, 11);
        WeightInit.RandomizeBatchNorm(network, 12);
        network.Train();
        var rng = new Random(13);
        var x = new Tensor(batch, 3, size, size);
        WeightInit.FillNormal(rng, x.Data, 0.5, 1);
        var dLogits = new Tensor(batch, config.NumClasses);
        WeightInit.FillNormal(rng, dLogits.Data, 0, 0.1);

        network.ZeroGrad();
        network.Forward(x);
        network.Backward(dLogits);
        var once = network.NamedParameters().Select(p => (p.Name, Grad: (float[])p.Parameter.Grad!.Data.Clone())).ToList();

        network.Forward(x);
        network.Backward(dLogits);
        var twice = network.NamedParameters().Select(p => p.Parameter.Grad!.Data).ToList();
        for (int i = 0; i < once.Count; i++)
        {
            var (name, g) = once[i];
            double scale = Math.Max(1e-6, g.Max(v => Math.Abs(v)));
            for (int j = 0; j < g.Length; j++)
            {
                double diff = Math.Abs(twice[i][j] - (2.0 * g[j]));
                Assert.True(diff <= 1e-4 * scale, $"{name}[{j}]: {twice[i][j]} after two passes, {g[j]} after one");
            }
        }
    }
}

// One train-time 3x3 stride-2 depthwise MobileOne block (k = 4 and the scale branch; no skip at stride 2), forward +
// backward in training mode, timed two ways: the branch passes and DepthwiseMoments on StridedPatches. Every shape
// runs both ways once first (tiered JIT), then best of 7 rounds, the two ways interleaved in every round. From the
// repository root, after `dotnet build -c Release`:
//   dotnet fsi tools/training/strided_block_bench.fsx THREADS
// The switch is the library's internal test override, set by reflection.
#r "../../src/MobileOne.Cli/bin/Release/net10.0/MobileOne.dll"
open System
open System.Reflection
open MobileOne.Kernels
open MobileOne.Models
open MobileOne.Tensors

let flags = BindingFlags.NonPublic ||| BindingFlags.Public ||| BindingFlags.Static
let momentsOverride = typeof<MobileOneBlock>.GetProperty("MomentsOverride", flags)
ComputeThreads.Count <- (if fsi.CommandLineArgs.Length > 1 then int fsi.CommandLineArgs.[1] else 1)

// (channels, batch, input side): S0's stride-2 depthwise layers at 32x32 (batch 64) and 224x224 (batch 16).
let shapes = [ (48, 64, 16); (48, 64, 8); (128, 64, 4); (256, 64, 2); (48, 16, 112); (48, 16, 56); (128, 16, 28); (256, 16, 14) ]
let cases =
    [ for (c, n, s) in shapes ->
        let block = MobileOneBlock.CreateTrainTime(BlockSpec(c, c, 3, 2, 1, c, 4, 0))
        block.Train() |> ignore
        let rng = Random(1)
        let x = Tensor(n, c, s, s)
        for i in 0 .. x.Length - 1 do x.Data.[i] <- float32 (rng.NextDouble())
        let o = (s - 1) / 2 + 1
        let dy = Tensor(n, c, o, o)
        for i in 0 .. dy.Length - 1 do dy.Data.[i] <- float32 (rng.NextDouble() - 0.5)
        (c, n, s, block, x, dy) ]

let time (c, n, s, block: MobileOneBlock, x: Tensor, dy: Tensor) moments =
    momentsOverride.SetValue(null, box (Nullable(moments)))
    let reps = max 3 (int (1e7 / float (n * c * s * s * 10)))
    block.Forward(x) |> ignore
    block.Backward(dy) |> ignore
    let watch = Diagnostics.Stopwatch.StartNew()
    for _ in 1 .. reps do
        block.Forward(x) |> ignore
        block.Backward(dy) |> ignore
    watch.Elapsed.TotalMilliseconds / float reps

for case in cases do
    time case false |> ignore
    time case true |> ignore

for (c, n, s, _, _, _) as case in cases do
    let best = Array.create 2 infinity
    for _ in 1 .. 7 do
        best.[0] <- min best.[0] (time case false)
        best.[1] <- min best.[1] (time case true)
    printfn "%4d channels, batch %3d, %3dx%-3d -> %3dx%-3d: branch passes %8.3f ms, moments %8.3f ms (%.2fx)"
        c n s s ((s - 1) / 2 + 1) ((s - 1) / 2 + 1) best.[0] best.[1] (best.[1] / best.[0])

// One train-time 1x1 MobileOne block (k = 4 branches and the BatchNorm skip where cin = cout), forward + backward in
// training mode, timed two ways: the branch passes (one stacked GEMM per pass) and PointwiseMoments. Every shape runs
// both ways once first (tiered JIT), then best of 7 rounds, the two ways interleaved in every round. From the
// repository root, after `dotnet build -c Release`:
//   dotnet fsi tools/training/pointwise_block_bench.fsx THREADS
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

// (in channels, out channels, batch, side): S0's 1x1 layers at 32x32 (batch 64) and one at 224x224 (batch 16).
let shapes = [ (48, 128, 64, 4); (128, 128, 64, 4); (128, 256, 64, 2); (256, 256, 64, 2); (256, 1024, 64, 1); (128, 128, 16, 28) ]
let cases =
    [ for (ci, co, n, s) in shapes ->
        let block = MobileOneBlock.CreateTrainTime(BlockSpec(ci, co, 1, 1, 0, 1, 4, 0))
        block.Train() |> ignore
        let rng = Random(1)
        let x = Tensor(n, ci, s, s)
        for i in 0 .. x.Length - 1 do x.Data.[i] <- float32 (rng.NextDouble())
        let dy = Tensor(n, co, s, s)
        for i in 0 .. dy.Length - 1 do dy.Data.[i] <- float32 (rng.NextDouble() - 0.5)
        (ci, co, n, s, block, x, dy) ]

let time (ci, co, n, s, block: MobileOneBlock, x: Tensor, dy: Tensor) moments =
    momentsOverride.SetValue(null, box (Nullable(moments)))
    let reps = max 3 (int (3e8 / float (n * ci * co * s * s * 4)))
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

for (ci, co, n, s, _, _, _) as case in cases do
    let best = Array.create 2 infinity
    for _ in 1 .. 7 do
        best.[0] <- min best.[0] (time case false)
        best.[1] <- min best.[1] (time case true)
    let flops = 3.0 * 2.0 * 4.0 * float ci * float co * float (n * s * s)
    printfn "%4d -> %4d channels, batch %3d, %3dx%-3d: branch passes %8.3f ms (%5.1f GFLOP/s), moments %8.3f ms (%.2fx)"
        ci co n s s best.[0] (flops / best.[0] / 1e6) best.[1] (best.[1] / best.[0])

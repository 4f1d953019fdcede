// One train-time 3x3 stride-1 depthwise MobileOne block (k = 4, scale branch and skip), forward + backward in
// training mode, timed three ways: the branch passes, and DepthwiseMoments in each PatchStack layout (planes in a row,
// images in lanes). Best of 7 rounds, the three interleaved in every round. From the repository root, after
// `dotnet build -c Release`:
//   dotnet fsi tools/training/depthwise_block_bench.fsx THREADS
// The switches are the library's internal test overrides, set by reflection.
#r "../../src/MobileOne.Cli/bin/Release/net10.0/MobileOne.dll"
open System
open System.Reflection
open MobileOne.Kernels
open MobileOne.Models
open MobileOne.Tensors

let flags = BindingFlags.NonPublic ||| BindingFlags.Public ||| BindingFlags.Static
let momentsOverride = typeof<MobileOneBlock>.GetProperty("MomentsOverride", flags)
let layoutOverride = typeof<MobileOneBlock>.Assembly.GetType("MobileOne.Models.DepthwiseMoments").GetProperty("LayoutOverride", flags)
ComputeThreads.Count <- (if fsi.CommandLineArgs.Length > 1 then int fsi.CommandLineArgs.[1] else 1)

// (channels, batch, plane side): S0's stride-1 depthwise layers at 32x32 (batch 64 and 256) and 224x224 (batch 16).
let shapes = [ (256, 64, 2); (128, 64, 4); (48, 64, 8); (128, 256, 4); (48, 256, 8); (256, 16, 14); (128, 16, 28); (48, 16, 56) ]
for (c, n, s) in shapes do
    let block = MobileOneBlock.CreateTrainTime(BlockSpec(c, c, 3, 1, 1, c, 4, 0))
    block.Train() |> ignore
    let rng = Random(1)
    let x = Tensor(n, c, s, s)
    for i in 0 .. x.Length - 1 do x.Data.[i] <- float32 (rng.NextDouble())
    let dy = Tensor(n, c, s, s)
    for i in 0 .. dy.Length - 1 do dy.Data.[i] <- float32 (rng.NextDouble() - 0.5)
    let time way =
        momentsOverride.SetValue(null, box (Nullable((way > 0))))
        layoutOverride.SetValue(null, box (Nullable((way = 2))))
        let reps = max 3 (int (1e7 / float (n * c * s * s * 40)))
        block.Forward(x) |> ignore
        block.Backward(dy) |> ignore
        let watch = Diagnostics.Stopwatch.StartNew()
        for _ in 1 .. reps do
            block.Forward(x) |> ignore
            block.Backward(dy) |> ignore
        watch.Elapsed.TotalMilliseconds / float reps
    let best = Array.create 3 infinity
    for _ in 1 .. 7 do
        for way in 0 .. 2 do
            best.[way] <- min best.[way] (time way)
    printfn "%4d channels, batch %3d, %2dx%-2d: branch passes %7.3f ms, moments (planes in a row) %7.3f ms (%.2fx), moments (images in lanes) %7.3f ms (%.2fx)"
        c n s s best.[0] best.[1] (best.[1] / best.[0]) best.[2] (best.[2] / best.[0])

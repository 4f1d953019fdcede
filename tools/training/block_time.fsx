// Forward + backward of one train-time MobileOne block in training mode, as the training step runs it (the library
// chooses the passes), on random data; prints the mean of 300 passes after a warm-up, four times. From the repository
// root, after `dotnet build -c Release`:
//   dotnet fsi tools/training/block_time.fsx dw|dw2|pw CHANNELS SIDE K BATCH [THREADS]
// e.g. `dw 256 2 4 64` is one of S0's 2x2 depthwise blocks at 32x32, `pw 256 2 4 64` its pointwise twin, `dw2 48 16 4 64`
// the stride-2 depthwise block on 16x16 inputs (SIDE is the input's side). To compare
// two commits, point a copy of this script's #r line at the other build's MobileOne.dll and run the two alternately.
#r "../../src/MobileOne.Cli/bin/Release/net10.0/MobileOne.dll"
open System
open MobileOne.Kernels
open MobileOne.Models
open MobileOne.Tensors
let args = fsi.CommandLineArgs
ComputeThreads.Count <- (if args.Length > 6 then int args.[6] else 1)
let kind, c, side, k, n = args.[1], int args.[2], int args.[3], int args.[4], int args.[5]
let spec =
    match kind with
    | "dw" -> BlockSpec(c, c, 3, 1, 1, c, k, 0)
    | "dw2" -> BlockSpec(c, c, 3, 2, 1, c, k, 0)
    | _ -> BlockSpec(c, c, 1, 1, 0, 1, k, 0)
let outSide = if kind = "dw2" then (side - 1) / 2 + 1 else side
let block = MobileOneBlock.CreateTrainTime(spec)
block.Train() |> ignore
let rng = Random(1)
let x = Tensor(n, c, side, side)
for i in 0 .. x.Length - 1 do x.Data.[i] <- float32 (rng.NextDouble())
let dy = Tensor(n, c, outSide, outSide)
for i in 0 .. dy.Length - 1 do dy.Data.[i] <- float32 (rng.NextDouble() - 0.5)
for round in 0 .. 4 do
    let watch = Diagnostics.Stopwatch.StartNew()
    for _ in 1 .. 300 do
        block.Forward(x) |> ignore
        block.Backward(dy) |> ignore
    if round > 0 then
        printfn "%s %d channels, %dx%d, k=%d, batch %d, %d thread(s): %.3f ms per forward + backward" kind c side side k n ComputeThreads.Count (watch.Elapsed.TotalMilliseconds / 300.0)

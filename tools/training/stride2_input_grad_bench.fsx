// The input gradient of S0's stride-2 depthwise layers (k = 4 3x3 branches and the 1x1 scale branch, as a train-time
// block passes them to DepthwiseConvolution.BackwardInput), at 32x32 (batch 64) and 224x224 (batch 16). Best of 7
// rounds of a repeated call, milliseconds per call. From the repository root, after `dotnet build -c Release`:
//   dotnet fsi tools/training/stride2_input_grad_bench.fsx THREADS
// To compare two builds, copy this script and point the #r line at the other build's MobileOne.dll.
#r "../../src/MobileOne.Cli/bin/Release/net10.0/MobileOne.dll"
#nowarn "9"
open System
open Microsoft.FSharp.NativeInterop
open MobileOne.Kernels
open MobileOne.Kernels.Depthwise

ComputeThreads.Count <- (if fsi.CommandLineArgs.Length > 1 then int fsi.CommandLineArgs.[1] else 1)

// (channels, batch, input side): the stride-2 depthwise layers of S0.
let shapes = [ (48, 64, 16); (48, 64, 8); (128, 64, 4); (256, 64, 2); (48, 16, 112); (48, 16, 56); (128, 16, 28); (256, 16, 14) ]
let rng = Random(1)
let random (count: int) = Array.init count (fun _ -> float32 (rng.NextDouble() - 0.5))
// Every shape is set up first and called 40 times before any is timed, so the timed calls run fully optimized
// (tiered) code: otherwise the first shape pays for the library's unoptimized first tier.
let setup (c, n, s) =
    let o = ((s - 1) / 2) + 1
    let weights = [| for _ in 1 .. 4 -> random (c * 9) |] |> Array.append [| random c |]
    let grads = [| for _ in 1 .. 5 -> random (n * c * o * o) |]
    let dx = Array.zeroCreate<float32> (n * c * s * s)
    let handles = [ for a in Array.append weights (Array.append grads [| dx |]) -> Runtime.InteropServices.GCHandle.Alloc(a, Runtime.InteropServices.GCHandleType.Pinned) ]
    let ptr (a: float32[]) = NativePtr.ofNativeInt<float32> (Runtime.InteropServices.Marshal.UnsafeAddrOfPinnedArrayElement(a, 0))
    let branches = [| for b in 0 .. 4 -> DepthwiseBranch(ptr weights.[b], (if b = 0 then 1 else 3), ptr grads.[b]) |]
    let run () = DepthwiseConvolution.BackwardInput(ptr dx, false, n, c, s, s, 2, 1, ReadOnlySpan(branches))
    (c, n, s, o, run, handles)
let cases = shapes |> List.map setup
for (_, _, _, _, run, _) in cases do
    for _ in 1 .. 40 do run ()
for (c, n, s, o, run, handles) in cases do
    let reps = max 5 (int (2e7 / float (n * c * s * s * 10)))
    let mutable best = infinity
    for _ in 1 .. 7 do
        let watch = Diagnostics.Stopwatch.StartNew()
        for _ in 1 .. reps do run ()
        best <- min best (watch.Elapsed.TotalMilliseconds / float reps)
    printfn "%4d channels, batch %3d, %3dx%-3d -> %3dx%-3d  %8.3f ms" c n s s o o best
    for h in handles do h.Free()

using MobileOne.Kernels.Engine;

namespace MobileOne.Inference;

/// <summary>
/// Softmax over the real channels of each pixel (pixels split between shares): the maximum is subtracted before the
/// exponentials so that no logit overflows them, and the sum is kept in double. Padding channels are zeroed.
/// </summary>
internal sealed unsafe class SoftmaxStep(EngineOp op, int index) : OpStep(op, index)
{
    public override void Run(RunState s, int share)
    {
        var o = s.Layout(Op.Output);
        var a = s.Layout(Op.Reads[0]);
        (long p0, long p1) = s.Share(o.Pixels(s.Shape.Batch), share);
        float* input = s.Value(Op.Reads[0]), output = s.Value(Op.Output);
        int channels = o.Channels;
        for (long p = p0; p < p1; p++)
        {
            float* x = input + (p * a.Stride);
            float* y = output + (p * o.Stride);
            float max = float.NegativeInfinity;
            for (int c = 0; c < channels; c++)
            {
                max = MathF.Max(max, x[c]);
            }

            double sum = 0;
            for (int c = 0; c < channels; c++)
            {
                y[c] = MathF.Exp(x[c] - max);
                sum += y[c];
            }

            float scale = (float)(1 / sum);
            for (int c = 0; c < channels; c++)
            {
                y[c] *= scale;
            }

            new Span<float>(y + channels, o.Stride - channels).Clear();
        }

        Epilogue(s, p0, p1, activationDone: false);
    }
}

/// <summary>Values joined along channels: each pixel gets every input's channels in turn, then zeroed padding channels (pixels split between shares).</summary>
internal sealed unsafe class ConcatStep(EngineOp op, int index) : OpStep(op, index)
{
    public override void Run(RunState s, int share)
    {
        var o = s.Layout(Op.Output);
        (long p0, long p1) = s.Share(o.Pixels(s.Shape.Batch), share);
        float* y = s.Value(Op.Output) + (p0 * o.Stride);
        int offset = 0;
        foreach (int read in Op.Reads)
        {
            var a = s.Layout(read);
            ChannelOps.CopyRows(y + offset, o.Stride, s.Value(read) + (p0 * a.Stride), a.Stride, p1 - p0, a.Channels);
            offset += a.Channels;
        }

        if (offset < o.Stride)
        {
            for (long p = 0; p < p1 - p0; p++)
            {
                new Span<float>(y + (p * o.Stride) + offset, o.Stride - offset).Clear();
            }
        }

        Epilogue(s, p0, p1, activationDone: false);
    }
}

/// <summary>Zero padding of the borders: output rows of all images split between shares; a row is cleared, then the input row copied into its place.</summary>
internal sealed unsafe class PadStep(EngineOp op, int index) : OpStep(op, index)
{
    public override void Run(RunState s, int share)
    {
        var pad = Op.Pad!;
        var i = s.Layout(Op.Reads[0]);
        var o = s.Layout(Op.Output);
        (long r0, long r1) = s.Share((long)s.Shape.Batch * o.Height, share);
        float* input = s.Value(Op.Reads[0]), output = s.Value(Op.Output);
        for (long r = r0; r < r1; r++)
        {
            long n = r / o.Height;
            int iy = (int)(r - (n * o.Height)) - pad.Top;
            float* row = output + (r * o.Width * o.Stride);
            new Span<float>(row, o.Width * o.Stride).Clear();
            if (iy >= 0 && iy < i.Height)
            {
                float* source = input + ((((n * i.Height) + iy) * i.Width) * i.Stride);
                ChannelOps.CopyRows(row + ((long)pad.Left * o.Stride), o.Stride, source, i.Stride, i.Width, i.Channels);
            }
        }

        Epilogue(s, r0 * o.Width, r1 * o.Width, activationDone: false);
    }
}

namespace MobileOne.Kernels.Depthwise;

/// <summary>
/// One channel of a 3x3, stride-2, padding-1 depthwise layer over a whole batch as nine patch rows (im2col of the
/// channel): row t holds, for every output position of the batch ([image][row][column]), the input pixel under tap t
/// of its window (0 where the window covers the padding). Tap t's offset is then t rows, so the loops of
/// <see cref="PatchPasses"/> run over the output positions unchanged. Unlike <see cref="PatchStack"/>, the rows are centred once gathered
/// (<see cref="GatherCentred"/>): the moments are those of p - m and need no correction for the padding.
/// </summary>
internal sealed unsafe class StridedPatches : PatchPasses
{
    /// <summary>The layout of <paramref name="batch"/> input planes of <paramref name="height"/> x <paramref name="width"/>.</summary>
    public StridedPatches(int batch, int height, int width)
        : this(batch, height, width, checked(batch * OutSize(height) * OutSize(width)))
    {
    }

    private StridedPatches(int batch, int height, int width, int positions)
        : base(BlockRuns(0, positions), checked(9 * RowLength(positions)), Ones(positions))
    {
        (Batch, Height, Width, Positions) = (batch, height, width, positions);
        (OutHeight, OutWidth) = (OutSize(height), OutSize(width));
        for (int t = 0; t < 9; t++)
        {
            Offsets[t] = t * RowLength(positions);
        }
    }

    public int Batch { get; }

    /// <summary>Input height.</summary>
    public int Height { get; }

    /// <summary>Input width.</summary>
    public int Width { get; }

    public int OutHeight { get; }

    public int OutWidth { get; }

    /// <summary>Output positions of the batch: the length of a patch row, an output and an output gradient.</summary>
    public int Positions { get; }

    /// <summary>
    /// patches = the nine patch rows of channel <paramref name="c"/> of NCHW <paramref name="nchw"/>, each minus its
    /// mean over the batch's positions: <paramref name="means"/>[t] when <paramref name="computeMeans"/> is false,
    /// else computed and written there. Row tails past <see cref="Positions"/> are not written (no loop reads them).
    /// </summary>
    public void GatherCentred(float* nchw, int channels, int c, float* patches, double* means, bool computeMeans, float* rowScratch)
    {
        int rowLength = Offsets[1], ho = OutHeight, wo = OutWidth, plane = ho * wo;
        long inPlane = (long)Height * Width;
        float* even = rowScratch, odd = rowScratch + wo;
        for (int i = 0; i < Batch; i++)
        {
            // The window rows that fall on the padding: the top one of output row 0, and the bottom one of the last
            // output row when the height is odd. Everything else is written below.
            for (int t = 0; t < 3; t++)
            {
                new Span<float>(patches + (t * rowLength) + (i * plane), wo).Clear();
                if ((Height & 1) == 1)
                {
                    new Span<float>(patches + ((6 + t) * rowLength) + (i * plane) + ((ho - 1) * wo), wo).Clear();
                }
            }

            float* src = nchw + ((((long)i * channels) + c) * inPlane);
            for (int y = 0; y < Height; y++, src += Width)
            {
                // Input column 2s is tap column 1 of output column s; 2s + 1 is tap column 2 of s and tap column 0 of s + 1.
                DepthwiseConvolution.Deinterleave(src, Width, even, odd);
                if ((Width & 1) == 1)
                {
                    odd[Width >> 1] = 0f;
                }

                // Input row 2r is tap row 1 of output row r; 2r + 1 is tap row 2 of r and tap row 0 of r + 1.
                int r = y >> 1;
                if ((y & 1) == 0)
                {
                    PlaceRow(patches + (3 * rowLength) + (i * plane) + (r * wo), rowLength, even, odd, wo);
                }
                else
                {
                    PlaceRow(patches + (6 * rowLength) + (i * plane) + (r * wo), rowLength, even, odd, wo);
                    if (r + 1 < ho)
                    {
                        PlaceRow(patches + (i * plane) + ((r + 1) * wo), rowLength, even, odd, wo);
                    }
                }
            }
        }

        for (int t = 0; t < 9; t++)
        {
            float* row = patches + (t * rowLength);
            if (computeMeans)
            {
                means[t] = Sum(row, Positions) / Positions;
            }

            Elementwise.Shift(row, row, Positions, (float)-means[t], relu: false);
        }
    }

    /// <summary>The three taps of a window row at one output row: column 0 = odd[s - 1], 1 = even[s], 2 = odd[s].</summary>
    private static void PlaceRow(float* tap0, int rowLength, float* even, float* odd, int wo)
    {
        float* tap1 = tap0 + rowLength, tap2 = tap1 + rowLength;
        tap0[0] = 0f;
        for (int s = 0; s < wo; s++)
        {
            tap1[s] = even[s];
            tap2[s] = odd[s];
        }

        for (int s = 1; s < wo; s++)
        {
            tap0[s] = odd[s - 1];
        }
    }

    /// <summary>g = channel <paramref name="c"/> of the NCHW output-shaped <paramref name="nchw"/>, positions in order.</summary>
    public void GatherOutput(float* nchw, int channels, int c, float* g)
    {
        int plane = OutHeight * OutWidth;
        for (int i = 0; i < Batch; i++)
        {
            new ReadOnlySpan<float>(nchw + ((((long)i * channels) + c) * plane), plane).CopyTo(new Span<float>(g + (i * plane), plane));
        }
    }

    /// <summary>Channel <paramref name="c"/> of the NCHW output = y + <paramref name="add"/>, then max with 0 when <paramref name="relu"/>.</summary>
    public void ScatterOutput(float* y, float add, bool relu, float* nchw, int channels, int c)
    {
        int plane = OutHeight * OutWidth;
        Elementwise.ShiftRuns(y, plane, nchw + ((long)c * plane), (long)channels * plane, Batch, plane, add, relu);
    }

    /// <summary>
    /// Channel <paramref name="c"/> of the NCHW input gradient = the nine rows h (<see cref="PatchPasses.InputGradient"/>'s
    /// output, one value per tap and output position) moved back to the pixels they were gathered from, summed. By input
    /// parity: (2r, 2s) gets h4[r, s]; (2r, 2s + 1) h5[r, s] + h3[r, s + 1]; (2r + 1, 2s) h7[r, s] + h1[r + 1, s];
    /// (2r + 1, 2s + 1) h8[r, s] + h6[r, s + 1] + h2[r + 1, s] + h0[r + 1, s + 1] (terms past the output are 0).
    /// </summary>
    public void ScatterInputGradient(float* h, float* nchw, int channels, int c, float* rowScratch)
    {
        int rowLength = Offsets[1], ho = OutHeight, wo = OutWidth, plane = ho * wo;
        long inPlane = (long)Height * Width;
        float* ee = rowScratch, eo = ee + wo, oe = eo + wo, oo = oe + wo;
        for (int i = 0; i < Batch; i++)
        {
            float* dx = nchw + ((((long)i * channels) + c) * inPlane);
            for (int r = 0; r < ho; r++)
            {
                long at = (i * plane) + (r * wo);
                float* h0 = h + at, h1 = h0 + rowLength, h2 = h1 + rowLength, h3 = h2 + rowLength, h4 = h3 + rowLength;
                float* h5 = h4 + rowLength, h6 = h5 + rowLength, h7 = h6 + rowLength, h8 = h7 + rowLength;
                bool below = r + 1 < ho;
                for (int s = 0; s < wo; s++)
                {
                    bool right = s + 1 < wo;
                    ee[s] = h4[s];
                    eo[s] = h5[s] + (right ? h3[s + 1] : 0f);
                    oe[s] = h7[s] + (below ? h1[s + wo] : 0f);
                    oo[s] = h8[s] + (right ? h6[s + 1] : 0f) + (below ? h2[s + wo] + (right ? h0[s + wo + 1] : 0f) : 0f);
                }

                DepthwiseConvolution.Interleave(ee, eo, Width, dx + ((long)(2 * r) * Width), accumulate: false);
                if ((2 * r) + 1 < Height)
                {
                    DepthwiseConvolution.Interleave(oe, oo, Width, dx + ((long)((2 * r) + 1) * Width), accumulate: false);
                }
            }
        }
    }

    /// <summary>Floats of one patch row: the positions rounded up to 16.</summary>
    private static int RowLength(int positions) => checked((positions + 15) & ~15);

    /// <summary>Output rows (columns) of a 3x3, stride-2, padding-1 window over <paramref name="side"/> input rows (columns).</summary>
    private static int OutSize(int side) => ((side - 1) / 2) + 1;

    private static float[] Ones(int positions)
    {
        var mask = new float[RowLength(positions)];
        mask.AsSpan(0, positions).Fill(1f);
        return mask;
    }
}

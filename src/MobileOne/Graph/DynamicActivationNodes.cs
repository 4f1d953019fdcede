namespace MobileOne.Graph;

/// <summary>DyReLU variants (Chen et al., "Dynamic ReLU", ECCV 2020).</summary>
public enum DyReluKind
{
    /// <summary>DyReLU-A: 2K coefficients shared by all channels (FC2 has 2K outputs).</summary>
    A,

    /// <summary>DyReLU-B: 2K coefficients per channel (FC2 has 2KC outputs).</summary>
    B,
}

/// <summary>
/// Dynamic ReLU (forward only): y_c = max_k (a^k_c x_c + b^k_c), with coefficients from a hyper function of the
/// image: m = mean over pixels of x (per channel), h = ReLU(W1 m + b1) (W1 [Reduced, Channels]),
/// z = W2 h + b2 (W2 [outputs, Reduced]), theta = 2 sigmoid(z) - 1, a^k = alpha^k + LambdaA theta_a^k,
/// b^k = beta^k + LambdaB theta_b^k, with alpha^0 = 1, alpha^k = 0 (k &gt; 0) and beta^k = 0 (the reference's init_v).
/// FC2 output order follows the reference implementation (theta.view(-1, C, 2K)): for DyReLU-A, outputs
/// [a^0 .. a^(K-1), b^0 .. b^(K-1)] (2K); for DyReLU-B, channel-major: output c*2K + k is theta_a^k of channel c
/// and output c*2K + K + k is theta_b^k of channel c (2KC).
/// </summary>
public sealed record DyReluNode(
    string Name,
    int Input,
    int Channels,
    int Reduced,
    DyReluKind Kind,
    int K,
    float[] ReduceWeight,
    float[] ReduceBias,
    float[] ExpandWeight,
    float[] ExpandBias,
    double LambdaA = 1.0,
    double LambdaB = 0.5)
    : GraphNode(Name, [Input])
{
    /// <summary>Outputs of FC2: 2K (A) or 2KC (B).</summary>
    public int Coefficients => Kind == DyReluKind.A ? 2 * K : 2 * K * Channels;

    /// <inheritdoc/>
    public override long Parameters => HyperFunctionParameters(Channels, Reduced, Coefficients);

    internal override void Validate(int[] inputChannels)
    {
        RequireInputs(1);
        if (inputChannels[0] != Channels || Reduced <= 0 || K <= 0 || !Enum.IsDefined(Kind))
        {
            throw new ArgumentException($"Node {Name}: DyReLU-{Kind} over {Channels} channels (reduced {Reduced}, K {K}); its input has {inputChannels[0]}.");
        }

        RequireHyperFunction(Name, ReduceWeight, ReduceBias, ExpandWeight, ExpandBias, Channels, Reduced, Coefficients);
    }

    internal override int OutputChannels(int[] inputChannels) => Channels;

    internal override ValueShape OutputShape(ValueShape[] inputs) => inputs[0];

    /// <summary>The two FCs plus K multiply-adds per element.</summary>
    internal override long MultiplyAccumulates(ValueShape[] inputs, ValueShape output) =>
        ((long)Channels * Reduced) + ((long)Coefficients * Reduced) + ((long)K * output.Elements);
}

/// <summary>
/// Dynamic Shift-Max (forward only; MicroNet, Li et al., ICCV 2021):
/// y_i = max_{k&lt;K} sum_{j&lt;J} a^k_{i,j} x_{(i + j C/G) mod C}, where C/G is the number of channels per group
/// (shift j moves by j whole groups). Coefficients come from a hyper function as in the reference's DYShiftMax:
/// m = mean over pixels of x, h = ReLU(W1 m + b1) (W1 [Reduced, Channels]), z = W2 h + b2 (W2 [K J C, Reduced]),
/// a^k_{i,j} = init^k_j + Lambda (2 hsigmoid(z) - 1) with hsigmoid(z) = ReLU6(z + 3) / 6 (the reference's
/// (h_sigmoid(z) - 0.5) * 2 act_max with act_max = Lambda). FC2 output (k J + j) C + i is a^k_{i,j} (the reference's
/// split into a1, b1, a2, b2 for K = J = 2). init^k_0 = 1 and init^k_j = 0 for j &gt; 0 (every k), so with W2 = 0 and
/// b2 = 0 the node is the identity. Note: the reference gathers its shifted channel with a permutation that also
/// rotates inside each group; this node uses the paper's plain circular shift by whole groups given above.
/// </summary>
public sealed record DynamicShiftMaxNode(
    string Name,
    int Input,
    int Channels,
    int Groups,
    int J,
    int K,
    int Reduced,
    float[] ReduceWeight,
    float[] ReduceBias,
    float[] ExpandWeight,
    float[] ExpandBias,
    double Lambda = 1.0)
    : GraphNode(Name, [Input])
{
    /// <summary>Channels per group: the distance of one shift.</summary>
    public int GroupChannels => Channels / Groups;

    /// <summary>Outputs of FC2: K J C.</summary>
    public int Coefficients => K * J * Channels;

    /// <summary>The initial coefficient init^k_j: 1 for j = 0, else 0.</summary>
    public static double Init(int k, int j) => j == 0 ? 1.0 : 0.0;

    /// <inheritdoc/>
    public override long Parameters => HyperFunctionParameters(Channels, Reduced, Coefficients);

    internal override void Validate(int[] inputChannels)
    {
        RequireInputs(1);
        if (inputChannels[0] != Channels || Reduced <= 0 || K <= 0 || J <= 0 || Groups <= 0 || Channels % Groups != 0)
        {
            throw new ArgumentException(
                $"Node {Name}: dynamic shift-max over {Channels} channels (groups {Groups}, J {J}, K {K}, reduced {Reduced}); its input has {inputChannels[0]}; groups must divide channels.");
        }

        RequireHyperFunction(Name, ReduceWeight, ReduceBias, ExpandWeight, ExpandBias, Channels, Reduced, Coefficients);
    }

    internal override int OutputChannels(int[] inputChannels) => Channels;

    internal override ValueShape OutputShape(ValueShape[] inputs) => inputs[0];

    /// <summary>The two FCs plus K J multiply-adds per element.</summary>
    internal override long MultiplyAccumulates(ValueShape[] inputs, ValueShape output) =>
        ((long)Channels * Reduced) + ((long)Coefficients * Reduced) + ((long)K * J * output.Elements);
}

using MobileOne.Tensors;

namespace MobileOne.Training;

/// <summary>
/// Softmax cross entropy averaged over the batch, PyTorch's <c>F.cross_entropy(logits, labels, label_smoothing=eps)</c>:
/// loss_n = (1 - eps) * (-log p[n, y_n]) + eps * mean over classes of (-log p[n, c]). With soft targets (mixup /
/// cutmix, timm's SoftTargetCrossEntropy) loss_n = sum over classes of -t[n, c] * log p[n, c]. Computed in double;
/// <see cref="Backward"/> returns dLoss/dLogits = (softmax - target distribution) / N.
/// </summary>
public sealed class CrossEntropyLoss
{
    private Tensor? probabilities;
    private Tensor? gradient;
    private double[]? targetDistribution;

    /// <summary>A loss with label smoothing eps = <paramref name="labelSmoothing"/> in [0, 1] (0: plain cross entropy).</summary>
    public CrossEntropyLoss(double labelSmoothing = 0.0)
    {
        if (!(labelSmoothing >= 0.0 && labelSmoothing <= 1.0))
        {
            throw new ArgumentOutOfRangeException(nameof(labelSmoothing), labelSmoothing, "Label smoothing must be between 0 and 1.");
        }

        LabelSmoothing = labelSmoothing;
    }

    /// <summary>eps of the hard-label <see cref="Forward(Tensor, ReadOnlySpan{int})"/>: the share of each target spread evenly over all classes. Soft targets are used as given.</summary>
    public double LabelSmoothing { get; }

    /// <summary>Mean loss over the batch for integer class labels.</summary>
    public double Forward(Tensor logits, ReadOnlySpan<int> labels)
    {
        var (n, classes) = CheckLogits(logits);
        if (labels.Length != n)
        {
            throw new ArgumentException($"Got {labels.Length} labels for a batch of {n} logits.", nameof(labels));
        }

        var target = Targets(n, classes);
        double eps = LabelSmoothing;
        for (int i = 0; i < n; i++)
        {
            int y = labels[i];
            if ((uint)y >= (uint)classes)
            {
                throw new ArgumentException($"Label {y} at batch index {i} is outside [0, {classes}).", nameof(labels));
            }

            var row = target.AsSpan(i * classes, classes);
            row.Fill(eps / classes);
            row[y] += 1.0 - eps;
        }

        return Compute(logits, n, classes);
    }

    /// <summary>Mean loss over the batch for target distributions [N, classes] (each row summing to 1); no extra smoothing.</summary>
    public double Forward(Tensor logits, Tensor targets)
    {
        var (n, classes) = CheckLogits(logits);
        if (!targets.HasShape(n, classes))
        {
            throw new ArgumentException($"Soft targets must have the logits' shape [{n}, {classes}]; got {targets.ShapeString}.", nameof(targets));
        }

        var target = Targets(n, classes);
        for (int i = 0; i < target.Length; i++)
        {
            target[i] = targets.Data[i];
        }

        return Compute(logits, n, classes);
    }

    /// <summary>dLoss/dLogits of the last Forward, a tensor owned by this loss until its next Forward.</summary>
    public Tensor Backward()
    {
        var p = probabilities ?? throw new InvalidOperationException("CrossEntropyLoss.Backward needs a Forward first.");
        int n = p.Dim(0), classes = p.Dim(1);
        if (gradient is null || !gradient.HasShape(n, classes))
        {
            gradient = new Tensor(n, classes);
        }

        double invN = 1.0 / n;
        for (int i = 0; i < p.Length; i++)
        {
            gradient.Data[i] = (float)((p.Data[i] - targetDistribution![i]) * invN);
        }

        return gradient;
    }

    private static (int N, int Classes) CheckLogits(Tensor logits)
    {
        ArgumentNullException.ThrowIfNull(logits);
        if (logits.Rank != 2 || logits.Dim(0) == 0 || logits.Dim(1) == 0)
        {
            throw new ArgumentException($"Cross entropy expects logits [N, classes] with N, classes > 0; got {logits.ShapeString}.", nameof(logits));
        }

        return (logits.Dim(0), logits.Dim(1));
    }

    private double[] Targets(int n, int classes)
    {
        if (targetDistribution is null || targetDistribution.Length != n * classes)
        {
            targetDistribution = new double[n * classes];
        }

        return targetDistribution;
    }

    private double Compute(Tensor logits, int n, int classes)
    {
        if (probabilities is null || !probabilities.HasShape(n, classes))
        {
            probabilities = new Tensor(n, classes);
        }

        double total = 0;
        for (int i = 0; i < n; i++)
        {
            var x = logits.Data.AsSpan(i * classes, classes);
            double max = double.NegativeInfinity;
            foreach (float v in x)
            {
                max = Math.Max(max, v);
            }

            double sum = 0;
            foreach (float v in x)
            {
                sum += Math.Exp(v - max);
            }

            double logSum = max + Math.Log(sum);
            double loss = 0;
            for (int c = 0; c < classes; c++)
            {
                double logP = x[c] - logSum;
                loss -= targetDistribution![(i * classes) + c] * logP;
                probabilities.Data[(i * classes) + c] = (float)Math.Exp(logP);
            }

            total += loss;
        }

        return total / n;
    }
}

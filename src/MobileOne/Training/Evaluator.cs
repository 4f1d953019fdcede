using MobileOne.Data.Loading;
using MobileOne.Inference;
using MobileOne.Models;
using MobileOne.Tensors;

namespace MobileOne.Training;

/// <summary>Accuracy and loss over a data set, as timm's validate.py reports them (top-k as fractions here).</summary>
public sealed record EvalResult(double Top1, double Top5, double Loss, int Count, long SkippedImages);

/// <summary>One row of --predictions: dataset index, true label, predicted label and its softmax probability.</summary>
public readonly record struct Prediction(int Index, int Label, int Predicted, double Probability);

/// <summary>
/// Runs a model in eval mode over a loader (no shuffling) and accumulates top-1, top-5 and the plain cross
/// entropy (no label smoothing), in double, in data set order. The network runs on the inference engine in the
/// form it is in: a train-time network as its multi-branch graph, a fused one as one convolution per block.
/// </summary>
public static class Evaluator
{
    /// <summary>
    /// Compiles <paramref name="network"/> for the inference engine with <paramref name="threads"/> threads and evaluates every batch
    /// of <paramref name="loader"/> in order; each image's <see cref="Prediction"/> is added to <paramref name="predictions"/> when given.
    /// Throws <see cref="InvalidOperationException"/> when no image could be evaluated.
    /// </summary>
    public static EvalResult Run(ClassifierNetwork network, DataLoader loader, ICollection<Prediction>? predictions = null, int threads = 1, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(loader);
        using var engine = CompiledModel.Compile(network, new InferenceOptions { Threads = threads });
        double lossSum = 0;
        long top1 = 0, top5 = 0;
        int count = 0;
        foreach (var batch in loader.Epoch(0, 0, cancellationToken))
        {
            using (batch)
            {
                var (images, labels) = batch;
                var logits = engine.Run(images);
                Accumulate(logits, labels, batch.Indices, predictions, ref lossSum, ref top1, ref top5);
                count += labels.Length;
            }
        }

        if (count == 0)
        {
            throw new InvalidOperationException($"{loader.Dataset.Source}: no image could be evaluated.");
        }

        return new EvalResult((double)top1 / count, (double)top5 / count, lossSum / count, count, loader.SkippedImages);
    }

    /// <summary>Index of the largest logit; the first one wins a tie.</summary>
    internal static int Argmax(ReadOnlySpan<float> row)
    {
        int argmax = 0;
        for (int c = 1; c < row.Length; c++)
        {
            if (row[c] > row[argmax])
            {
                argmax = c;
            }
        }

        return argmax;
    }

    private static void Accumulate(Tensor logits, int[] labels, int[] indices, ICollection<Prediction>? predictions, ref double lossSum, ref long top1, ref long top5)
    {
        int classes = logits.Dim(1);
        int k = Math.Min(5, classes);
        for (int n = 0; n < labels.Length; n++)
        {
            ReadOnlySpan<float> row = logits.Data.AsSpan(n * classes, classes);
            int label = labels[n];
            int argmax = Argmax(row);
            float max = row[argmax];

            double sumExp = 0;
            for (int c = 0; c < classes; c++)
            {
                sumExp += Math.Exp(row[c] - (double)max);
            }

            lossSum += Math.Log(sumExp) - (row[label] - (double)max);

            // Rank of the true class: how many logits beat it (ties resolved towards the lower index, like topk).
            int better = 0;
            for (int c = 0; c < classes; c++)
            {
                if (row[c] > row[label] || (row[c] == row[label] && c < label))
                {
                    better++;
                }
            }

            top1 += better == 0 ? 1 : 0;
            top5 += better < k ? 1 : 0;
            predictions?.Add(new Prediction(indices[n], label, argmax, 1.0 / sumExp));
        }
    }
}

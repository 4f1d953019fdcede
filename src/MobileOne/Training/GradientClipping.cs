using MobileOne.Nn;

namespace MobileOne.Training;

/// <summary>PyTorch's clip_grad_norm_ (L2 norm over all gradients together).</summary>
public static class GradientClipping
{
    /// <summary>
    /// Computes the global L2 norm of the gradients (sums of squares in double, parameters in order) and, when it exceeds
    /// <paramref name="maxNorm"/>, scales every gradient by maxNorm / (norm + 1e-6), as PyTorch does. Returns the norm before clipping.
    /// </summary>
    public static double ClipByGlobalNorm(IEnumerable<Parameter> parameters, double maxNorm)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (!(maxNorm > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "The maximum gradient norm must be positive.");
        }

        var grads = parameters.Select(p => p.Grad).OfType<Tensors.Tensor>().ToList();
        double total = 0;
        foreach (var g in grads)
        {
            double s = 0;
            foreach (float v in g.Data)
            {
                s += (double)v * v;
            }

            total += s;
        }

        double norm = Math.Sqrt(total);
        double coefficient = maxNorm / (norm + 1e-6);
        if (coefficient < 1)
        {
            float c = (float)coefficient;
            foreach (var g in grads)
            {
                Kernels.Elementwise.Scale(g.Data, c);
            }
        }

        return norm;
    }

    /// <see cref="ClipByGlobalNorm(IEnumerable{Parameter}, double)"/> over every parameter of <paramref name="module"/>, in its parameter order.
    public static double ClipByGlobalNorm(Module module, double maxNorm) =>
        ClipByGlobalNorm(module.NamedParameters().Select(p => p.Parameter), maxNorm);
}

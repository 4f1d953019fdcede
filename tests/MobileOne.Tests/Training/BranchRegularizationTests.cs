using MobileOne.Analysis;
using MobileOne.Models;
using MobileOne.Tensors;
using MobileOne.Tests.Nn;
using MobileOne.Training;

namespace MobileOne.Tests.Training;

/// <summary>
/// `--ortho-reg` and `--branch-diversity` in a training step: the step's gradients are the loss's plus the weighted
/// penalty gradients (checked against finite differences in Analysis/BranchPenaltyTests), the reported penalties are
/// the model's, and the options are validated with messages naming them.
/// </summary>
[Collection(KernelSettingsCollection.Name)]
public class BranchRegularizationTests
{
    private static readonly MobileOneConfig Tiny = MobileOneConfig.Parse("units=1/2/1/1,widths=0.25/0.25/0.25/0.25,k=3,se=0/0/1/1,classes=6");

    [Fact]
    public void A_step_adds_the_weighted_penalty_gradients_to_the_branch_weights_and_gammas()
    {
        const double ortho = 0.01, diversity = 0.7;
        var (plain, images, labels) = Setup();
        var (regularized, _, _) = Setup();

        // Learning rate 0: the step leaves the weights, so the gradients and penalties can be compared afterwards.
        TrainStep Step(MobileOneNetwork n, BranchRegularization? r) =>
            new(n, new Sgd(ParameterGroups.WeightDecaySplit(n, 0, 0)), new CrossEntropyLoss(0.1)) { Regularization = r };
        var a = Step(plain, null).Run(images, labels);
        var b = Step(regularized, new BranchRegularization(ortho, diversity)).Run(images, labels);
        Assert.Equal(a.Loss, b.Loss);
        Assert.Equal(default, a.Penalties);
        Assert.Equal(BranchRegularization.Measure(regularized), b.Penalties);
        Assert.True(b.Penalties.Orthogonality > 0 && b.Penalties.Diversity > 0);

        double orthoSum = 0, diversitySum = 0;
        foreach (var ((_, p), (_, r)) in plain.Blocks().Zip(regularized.Blocks()))
        {
            var spec = r.Spec;
            var dw = r.ConvKxk.Select(c => new double[c.Conv.Weight.Value.Length]).ToArray();
            var dgamma = r.ConvKxk.Select(c => new double[c.Bn.Weight.Value.Length]).ToArray();
            diversitySum += BranchDiversity.Penalty(r, dw, dgamma);
            for (int i = 0; i < r.ConvKxk.Count; i++)
            {
                var weight = r.ConvKxk[i].Conv.Weight.Value.Data.Select(v => (double)v).ToArray();
                var dOrtho = new double[weight.Length];
                orthoSum += KernelOrthogonality.Penalty(weight, spec.OutChannels, spec.InChannels / spec.Groups, spec.KernelSize, spec.KernelSize, spec.Stride, spec.Stride, spec.Groups, dOrtho);
                AssertAdded(p.ConvKxk[i].Conv.Weight.Grad!, r.ConvKxk[i].Conv.Weight.Grad!, dOrtho.Select((g, j) => (ortho * g) + (diversity * dw[i][j])).ToArray());
                AssertAdded(p.ConvKxk[i].Bn.Weight.Grad!, r.ConvKxk[i].Bn.Weight.Grad!, dgamma[i].Select(g => diversity * g).ToArray());
            }

            // Not penalized: the scale branch and the skip.
            if (r.ConvScale is not null)
            {
                Assert.Equal(p.ConvScale!.Conv.Weight.Grad!.Data, r.ConvScale.Conv.Weight.Grad!.Data);
            }
        }

        Assert.Equal(orthoSum, b.Penalties.Orthogonality, orthoSum * 1e-12);
        Assert.Equal(diversitySum, b.Penalties.Diversity, 1e-12);
        Assert.Equal(plain.Head.Weight.Grad!.Data, regularized.Head.Weight.Grad!.Data);
    }

    [Fact]
    public void Only_the_penalties_with_a_positive_weight_are_computed_in_a_step()
    {
        var (network, images, labels) = Setup();
        var step = new TrainStep(network, new Sgd(ParameterGroups.WeightDecaySplit(network, 0.01, 0)), new CrossEntropyLoss()) { Regularization = new BranchRegularization(0, 0.5) };
        var r = step.Run(images, labels);
        Assert.Equal(0, r.Penalties.Orthogonality);
        Assert.True(r.Penalties.Diversity > 0);
        Assert.Throws<ArgumentOutOfRangeException>(() => new BranchRegularization(-1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new BranchRegularization(0, double.PositiveInfinity));
    }

    [Theory]
    [InlineData(-1.0, 0.0, "--ortho-reg must be a number >= 0; got -1.")]
    [InlineData(double.NaN, 0.0, "--ortho-reg must be a number >= 0; got NaN.")]
    [InlineData(0.0, double.PositiveInfinity, "--branch-diversity must be a number >= 0; got Infinity.")]
    [InlineData(0.0, -0.25, "--branch-diversity must be a number >= 0; got -0.25.")]
    public void Options_name_the_penalty_that_is_wrong(double ortho, double diversity, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => new TrainingOptions { OrthoReg = ortho, BranchDiversity = diversity }.Validate());
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void Summary_csv_keeps_the_penalty_columns_and_reads_files_without_them()
    {
        using var dir = new TempDir();
        string path = dir.File(SummaryCsv.FileName);
        var rows = new[] { new EpochSummary(1, 1.5, 0.4, 1.2, 0.5, 0.9, 0.1, 0.45, 0.88, 1234.5, 0.0125), new EpochSummary(2, 1.1, 0.6, 0.9, 0.7, 0.95, 0.05, 0.65, 0.93, 1000.25, 0.5) };
        SummaryCsv.Write(path, rows);
        Assert.StartsWith("epoch,train_loss,eval_loss,eval_top1,eval_top5,lr,train_top1,ema_eval_top1,ema_eval_top5,ortho_penalty,branch_diversity\n", File.ReadAllText(path));
        Assert.Equal(rows, SummaryCsv.Read(path));

        SummaryCsv.Write(path, rows.Select(r => r with { EmaEvalTop1 = double.NaN, EmaEvalTop5 = double.NaN }).ToArray());
        Assert.StartsWith("epoch,train_loss,eval_loss,eval_top1,eval_top5,lr,train_top1,ortho_penalty,branch_diversity\n", File.ReadAllText(path));
        Assert.Equal(0.0125, SummaryCsv.Read(path)[0].BranchDiversity);
        Assert.True(double.IsNaN(SummaryCsv.Read(path)[0].EmaEvalTop1));

        // A file of an earlier version: EMA columns, no penalties.
        File.WriteAllText(path, "epoch,train_loss,eval_loss,eval_top1,eval_top5,lr,train_top1,ema_eval_top1,ema_eval_top5\n1,1.5,1.2,0.5,0.9,0.1,0.4,0.45,0.88\n");
        var old = SummaryCsv.Read(path).Single();
        Assert.Equal(0.45, old.EmaEvalTop1);
        Assert.True(double.IsNaN(old.OrthoPenalty) && double.IsNaN(old.BranchDiversity));
    }

    private static void AssertAdded(Tensor plain, Tensor regularized, double[] added)
    {
        for (int i = 0; i < added.Length; i++)
        {
            double expected = plain.Data[i] + added[i];
            Assert.True(Math.Abs(regularized.Data[i] - expected) <= 1e-6 * Math.Max(1, Math.Abs(expected)), $"element {i}: {regularized.Data[i]} vs {expected}");
        }
    }

    private static (MobileOneNetwork Network, Tensor Images, int[] Labels) Setup()
    {
        var network = MobileOneNetwork.Create(Tiny);
        WeightInit.Initialize(network, 3);
        var rng = new Random(3);
        var images = new Tensor(4, 3, 24, 24);
        WeightInit.FillNormal(rng, images.Data, 0, 1);
        var labels = Enumerable.Range(0, 4).Select(_ => rng.Next(Tiny.NumClasses)).ToArray();
        return (network, images, labels);
    }
}

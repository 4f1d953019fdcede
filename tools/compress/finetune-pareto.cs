#:project ../../src/MobileOne.Imaging/MobileOne.Imaging.csproj
// Draws docs/ideas.md's fine-tuning chart: Fashion-MNIST top-1 against deployed parameters for each compression
// level, before and after fine-tuning, from the measured rows of a CSV (level,params,top1_before,top1_after).
// Run from the repository root:
//   dotnet run -c Release tools/compress/finetune-pareto.cs docs/studies/compress-finetune-fmnist.csv docs/studies/compress-finetune-pareto.png
using System.Globalization;
using MobileOne.Imaging.Plots;

if (args.Length != 2)
{
    Console.Error.WriteLine("usage: finetune-pareto.cs ROWS.csv OUT.png");
    return 1;
}

var rows = File.ReadAllLines(args[0]).Skip(1).Where(l => l.Length > 0).Select(l => l.Split(',')).ToList();
double Number(string s) => double.Parse(s, CultureInfo.InvariantCulture);
var levels = rows.Select(r => r[0]).ToList();
var parameters = rows.Select(r => Number(r[1]) / 1000).ToList();
PointSeries Series(string name, int column) =>
    new(name, parameters, rows.Select(r => 100 * Number(r[column])).ToList(), Line: false, Labels: levels);

PointsChart.Save(args[1], "Fashion-MNIST S0, compressed: top-1 against deployed parameters", "deployed parameters (thousands)", "top-1 %",
    [Series("before fine-tuning", 2), Series("after 1 epoch of fine-tuning", 3)]);
Console.WriteLine($"wrote {args[1]}");
return 0;

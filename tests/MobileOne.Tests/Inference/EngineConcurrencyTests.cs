using MobileOne.Inference;
using MobileOne.Models;
using MobileOne.Tensors;

namespace MobileOne.Tests.Inference;

/// <summary>
/// One compiled model under many callers: distinct inputs and shapes at once (a shared buffer between callers or shapes
/// would show as a wrong answer), Dispose racing running calls, and the bound on cached shape plans.
/// </summary>
public class EngineConcurrencyTests
{
    private static readonly (int Batch, int Height, int Width)[] Shapes =
    [
        (1, 32, 32), (2, 40, 24), (3, 16, 48), (1, 56, 40), (2, 32, 32), (4, 24, 24), (1, 17, 29), (2, 48, 16),
    ];

    [Fact]
    public async Task Callers_with_distinct_inputs_and_shapes_each_get_their_own_single_threaded_result()
    {
        var network = Network();
        var inputs = Shapes.Select((s, i) => EngineTestSupport.RandomInput(new Random(100 + i), s.Batch, 3, s.Height, s.Width)).ToArray();
        float[][] expected;
        using (var single = CompiledModel.Compile(network))
        {
            expected = inputs.Select(x => single.Run(x).Data).ToArray();
        }

        using var model = CompiledModel.Compile(network, new InferenceOptions { Threads = 2 });
        var tasks = Enumerable.Range(0, 12).Select(caller => Task.Run(() =>
        {
            var rng = new Random(caller);
            for (int i = 0; i < 16; i++)
            {
                // Each caller walks the shapes in its own order, so different shapes run side by side.
                int which = rng.Next(Shapes.Length);
                var (batch, height, width) = Shapes[which];
                var output = new float[expected[which].Length];
                model.Run(inputs[which].Data, batch, height, width, output);
                Assert.True(expected[which].AsSpan().SequenceEqual(output), $"caller {caller}, run {i}, shape {Shapes[which]}: differs from its single-threaded result");
            }
        }));
        await Task.WhenAll(tasks);
    }

    [Fact]
    public void Dispose_racing_runs_ends_every_call_with_its_result_or_an_ObjectDisposedException()
    {
        var network = Network();
        var input = EngineTestSupport.RandomInput(new Random(7), 2, 3, 32, 32);
        float[] expected;
        using (var single = CompiledModel.Compile(network))
        {
            expected = single.Run(input).Data;
        }

        int totalCompleted = 0;
        for (int trial = 0; trial < 5; trial++)
        {
            var model = CompiledModel.Compile(network, new InferenceOptions { Threads = 2 });
            int completed = 0, refused = 0, wrong = 0;
            Exception? unexpected = null;
            using var started = new CountdownEvent(6);

            // Dedicated threads, not the thread pool: six CPU-bound loops would starve a pool sized for two cores.
            var callers = Enumerable.Range(0, 6).Select(_ => new Thread(() =>
            {
                var output = new float[expected.Length];
                started.Signal();
                while (true)
                {
                    try
                    {
                        model.Run(input.Data, 2, 32, 32, output);
                    }
                    catch (ObjectDisposedException)
                    {
                        Interlocked.Increment(ref refused);
                        return;
                    }
                    catch (Exception e)
                    {
                        unexpected = e;
                        return;
                    }

                    if (!expected.AsSpan().SequenceEqual(output))
                    {
                        Interlocked.Increment(ref wrong);
                    }

                    Interlocked.Increment(ref completed);
                }
            }) { IsBackground = true }).ToArray();
            foreach (var t in callers)
            {
                t.Start();
            }

            started.Wait();
            Thread.Sleep(5 + (trial * 7));
            model.Dispose();
            foreach (var t in callers)
            {
                Assert.True(t.Join(TimeSpan.FromSeconds(30)), "a caller did not stop after Dispose");
            }

            Assert.Null(unexpected);
            Assert.Equal(0, wrong);
            Assert.Equal(6, refused);
            Assert.Throws<ObjectDisposedException>(() => model.Run(input));
            model.Dispose(); // a second Dispose is harmless
            totalCompleted += completed;
        }

        Assert.True(totalCompleted > 0, "no run finished before Dispose in any trial: the race was not exercised");
    }

    [Fact]
    public void The_shape_plan_cache_keeps_a_bounded_number_of_shapes()
    {
        using var model = CompiledModel.Compile(Network());
        var first = EngineTestSupport.RandomInput(new Random(3), 1, 3, 8, 8);
        float[] firstResult = model.Run(first).Data;
        for (int size = 9; size < 9 + CompiledModel.MaxCachedShapes + 10; size++)
        {
            model.Run(EngineTestSupport.RandomInput(new Random(size), 1, 3, size, 8));
            Assert.True(model.CachedShapeCount <= CompiledModel.MaxCachedShapes);
        }

        Assert.Equal(CompiledModel.MaxCachedShapes, model.CachedShapeCount);

        // The evicted first shape is planned again and gives the same answer.
        Assert.Equal(firstResult, model.Run(first).Data);
    }

    private static MobileOneNetwork Network() =>
        EngineTestSupport.RandomFused(MobileOneConfig.Parse("units=1/1/1/1,widths=0.25/0.25/0.5/0.5,k=1,se=0/0/1/1,classes=5"), 11);
}

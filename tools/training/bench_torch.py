# Same-machine PyTorch reference: one SGD training step of the train-time S0 (k=4, 10 classes) on synthetic data.
import sys, time, torch
sys.path.insert(0, __import__('os').path.dirname(__import__('os').path.abspath(__file__)))
from mobileone_torch import Net
batch, size, threads, steps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
torch.manual_seed(0)
net = Net([2, 8, 10, 1], [0.75, 1.0, 1.0, 2.0], 4, [0, 0, 0, 0], 10).train()
opt = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9, nesterov=True, weight_decay=1e-4)
x = torch.randn(batch, 3, size, size); y = torch.randint(0, 10, (batch,))
def step():
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(net(x), y, label_smoothing=0.1)
    loss.backward(); opt.step()
for _ in range(3): step()
times = []
for _ in range(steps):
    t = time.perf_counter(); step(); times.append((time.perf_counter() - t) * 1000)
times.sort()
med = times[len(times) // 2]
print(f"pytorch {torch.__version__} batch {batch} size {size} threads {threads}: median {med:.1f} ms p10 {times[len(times)//10]:.1f} p90 {times[(9*len(times))//10]:.1f} -> {batch*1000/med:.1f} img/s")

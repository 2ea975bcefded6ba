import torch

torch.set_default_dtype(torch.float64)
# pytest runs with -n 2 on 2 cores: one intra-op thread per worker avoids OpenMP
# oversubscription, which makes the many small matrix operations in these tests ~10-100x slower.
torch.set_num_threads(1)

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

import attnlib
from attnlib import train


def regression_batch(generator):
    x = torch.randn(16, 3, generator=generator)
    return x, x @ torch.tensor([1.0, -2.0, 0.5])


def mse(model, batch):
    x, y = batch
    return F.mse_loss(model(x).squeeze(-1), y)


def test_train_is_adam_on_the_batches_its_seed_draws():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    reference = nn.Linear(3, 1)
    reference.load_state_dict(model.state_dict())
    losses = train(model, regression_batch, mse, steps=60, lr=0.1, seed=7)
    # The same steps written out with torch.optim.Adam and a generator seeded the same way.
    optimizer, gen, expected = torch.optim.Adam(reference.parameters(), lr=0.1), torch.Generator().manual_seed(7), []
    for _ in range(60):
        loss = mse(reference, regression_batch(gen))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        expected.append(loss.item())
    assert_close(torch.tensor(losses), torch.tensor(expected))
    assert_close(model.weight, reference.weight)
    assert losses[-1] < losses[0] / 10


def test_train_leaves_the_global_generator_alone_and_calls_back():
    model, calls = nn.Linear(3, 1), []
    torch.manual_seed(3)
    before = torch.random.get_rng_state()
    train(model, regression_batch, mse, steps=6, lr=0.01, seed=0, every=2,
          callback=lambda step, losses: calls.append((step, len(losses))))
    assert torch.equal(torch.random.get_rng_state(), before)
    assert calls == [(2, 2), (4, 4), (6, 6)]


def test_train_rejects_no_steps():
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        train(nn.Linear(3, 1), regression_batch, mse, steps=0, lr=0.01, seed=0)


def test_reproducible_seeds_but_does_not_pin_threads():
    threads = torch.get_num_threads()
    attnlib.reproducible(5)
    a = torch.rand(3)
    attnlib.reproducible(5)
    assert torch.equal(a, torch.rand(3))
    assert torch.get_num_threads() == threads

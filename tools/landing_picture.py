"""The landing page's picture: chapter 1's data-flow diagram of one self-attention layer, drawn from
a real forward pass (attnlib.pictures.flow.data_flow), so it changes when the library does.

    .venv/bin/python tools/landing_picture.py     # `make build` runs it before building the book

Writes _build/pictures/data-flow.png, which intro.md shows as its figure.
"""

from pathlib import Path

import torch

import attnlib
from attnlib.display import use_book_style
from attnlib.pictures.flow import data_flow

OUT = Path(__file__).resolve().parents[1] / "_build" / "pictures" / "data-flow.png"


def main() -> None:
    use_book_style()
    attnlib.reproducible(0)
    tokens = ["the", "cat", "sat", "on", "the", "mat"]
    layer = attnlib.SelfAttention(8, 4, score="scaled_dot")  # d_model 8, one head of width 4
    x = torch.randn(len(tokens), 8)                          # (n, d_model) = (6, 8)
    picture = data_flow(layer, x, tokens)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    picture.figure.savefig(OUT, dpi=200)
    print(f"landing picture: {OUT.relative_to(OUT.parents[2])}, shapes {picture.drawn['shapes']}")


if __name__ == "__main__":
    main()

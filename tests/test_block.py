"""The one Transformer block: against torch's own pre-norm layers and transformers' Llama attention, in float64."""

import pytest
import torch
from torch import nn
from torch.testing import assert_close
from transformers import LlamaConfig
from transformers.models.llama.modeling_llama import LlamaAttention

from attnlib import Config, KVCache, MultiHeadSelfAttention, TransformerLM
from attnlib.block import Block, GroupedSelfAttention, merge_heads, split_heads

F64 = dict(rtol=1e-10, atol=1e-12)  # float64: agreement to rounding, not to a tolerance a test needs


def _copy_mha(ours: GroupedSelfAttention, ref: nn.MultiheadAttention) -> None:
    with torch.no_grad():
        ours.qkv.weight.copy_(ref.in_proj_weight)
        ours.qkv.bias.copy_(ref.in_proj_bias)
        ours.out.weight.copy_(ref.out_proj.weight)
        ours.out.bias.copy_(ref.out_proj.bias)


def _copy_ff_and_norms(block: Block, ref: nn.Module, norms: list[str]) -> None:
    ours = [block.ln1, block.ln_cross, block.ln2] if block.cross is not None else [block.ln1, block.ln2]
    with torch.no_grad():
        block.ff[0].load_state_dict(ref.linear1.state_dict())
        block.ff[2].load_state_dict(ref.linear2.state_dict())
        for ln, name in zip(ours, norms, strict=True):
            ln.load_state_dict(getattr(ref, name).state_dict())
            ln.weight.uniform_(0.5, 1.5)  # not the identity, so a swapped norm would show
            getattr(ref, name).weight.copy_(ln.weight)


def test_an_encoder_block_is_torchs_pre_norm_encoder_layer():
    config = Config(vocab_size=5, context=9, d_model=16, n_heads=4, d_ff=24)
    torch.manual_seed(0)
    ref = nn.TransformerEncoderLayer(16, 4, 24, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
    ref = ref.double().eval()
    block = Block(config, causal=False).double()
    _copy_mha(block.attn, ref.self_attn)
    _copy_ff_and_norms(block, ref, ["norm1", "norm2"])
    x = torch.randn(3, 9, 16, dtype=torch.float64)
    real = torch.ones(3, 9, dtype=torch.bool)
    real[1, 6:] = False  # padding in the second sequence
    out = block(x, mask=real[:, None, None, :]).x
    assert_close(out, ref(x, src_key_padding_mask=~real), **F64)  # torch's mask: True = padding


def test_a_decoder_block_with_cross_attention_is_torchs_pre_norm_decoder_layer():
    config = Config(vocab_size=5, context=9, d_model=16, n_heads=4, d_ff=24)
    torch.manual_seed(0)
    ref = nn.TransformerDecoderLayer(16, 4, 24, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
    ref = ref.double().eval()
    block = Block(config, cross=True).double()
    _copy_mha(block.attn, ref.self_attn)
    with torch.no_grad():
        d = 16
        block.cross.q.weight.copy_(ref.multihead_attn.in_proj_weight[:d])
        block.cross.q.bias.copy_(ref.multihead_attn.in_proj_bias[:d])
        block.cross.kv.weight.copy_(ref.multihead_attn.in_proj_weight[d:])
        block.cross.kv.bias.copy_(ref.multihead_attn.in_proj_bias[d:])
        block.cross.out.load_state_dict(ref.multihead_attn.out_proj.state_dict())
    _copy_ff_and_norms(block, ref, ["norm1", "norm2", "norm3"])
    x, memory = torch.randn(2, 7, 16, dtype=torch.float64), torch.randn(2, 5, 16, dtype=torch.float64)
    real = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])  # (batch, n_mem)
    out = block(x, memory=memory, memory_mask=real[:, None, None, :])
    expected = ref(x, memory, tgt_mask=nn.Transformer.generate_square_subsequent_mask(7, dtype=torch.float64),
                   tgt_is_causal=True, memory_key_padding_mask=~real)
    assert_close(out.x, expected, **F64)
    assert out.cross_weights.shape == (2, 4, 7, 5) and (out.cross_weights[1, ..., 3:] == 0).all()


def test_default_attention_is_multi_head_self_attention_exactly():
    config = Config(vocab_size=5, context=8, d_model=16, n_heads=4)
    torch.manual_seed(0)
    ours, mhsa = GroupedSelfAttention(config).double(), MultiHeadSelfAttention(16, 4).double()
    ours.load_state_dict(mhsa.state_dict())  # the same parameters, the same names
    x = torch.randn(2, 8, 16, dtype=torch.float64)
    out, weights = ours(x)
    ref_out, ref_weights = mhsa(x, causal=True)
    assert torch.equal(out, ref_out) and torch.equal(weights, ref_weights)


def _llama(config: Config) -> LlamaAttention:
    llama_config = LlamaConfig(hidden_size=config.d_model, num_attention_heads=config.n_heads,
                               num_key_value_heads=config.n_kv_heads, head_dim=config.d_head, attention_bias=True,
                               vocab_size=config.vocab_size, num_hidden_layers=1, intermediate_size=config.d_ff)
    llama_config._attn_implementation = "sdpa"  # torch's kernel; causal when no mask is given
    return LlamaAttention(llama_config, layer_idx=0).double()


def _rotary_cos_sin(n: int, d_head: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Llama's position embeddings (cos, sin), each (batch, n, d_head), computed in float64 from the formula."""
    theta = 10000.0 ** (-torch.arange(0, d_head, 2, dtype=torch.float64) / d_head)  # (d_head / 2,)
    angles = torch.arange(n, dtype=torch.float64)[:, None] * theta  # (n, d_head / 2)
    angles = torch.cat([angles, angles], -1).expand(batch, n, d_head)  # Llama's "half" layout
    return angles.cos(), angles.sin()


@pytest.mark.parametrize("n_kv_heads", [4, 2, 1])
def test_rotary_grouped_attention_is_llamas_attention_outputs_and_gradients(n_kv_heads):
    config = Config(vocab_size=5, context=11, d_model=32, n_heads=4, n_kv_heads=n_kv_heads, rotary=True)
    torch.manual_seed(0)
    llama, ours = _llama(config), GroupedSelfAttention(config).double()
    with torch.no_grad():
        for name in ("weight", "bias"):
            parts = [getattr(getattr(llama, p), name) for p in ("q_proj", "k_proj", "v_proj")]
            getattr(ours.qkv, name).copy_(torch.cat(parts))  # (h + 2 h_kv) d_head rows: W_q, W_k, W_v
            getattr(ours.out, name).copy_(getattr(llama.o_proj, name))
    x = torch.randn(3, 11, 32, dtype=torch.float64, requires_grad=True)
    out, _ = ours(x)
    expected, _ = llama(x, _rotary_cos_sin(11, 8, 3), None)
    assert_close(out, expected, **F64)
    g = torch.randn_like(out)
    ours_grads = torch.autograd.grad(out, [x, ours.qkv.weight, ours.out.weight], g)
    ref_grads = torch.autograd.grad(expected, [x, llama.q_proj.weight, llama.k_proj.weight, llama.v_proj.weight,
                                               llama.o_proj.weight], g)
    assert_close(ours_grads[0], ref_grads[0], **F64)
    assert_close(ours_grads[1], torch.cat(ref_grads[1:4]), **F64)
    assert_close(ours_grads[2], ref_grads[4], **F64)


@pytest.mark.parametrize("n_kv_heads,rotary", [(4, False), (2, True), (1, True), (1, False)])
def test_cached_logits_equal_a_full_recomputation_with_grouped_heads_and_rotary(n_kv_heads, rotary):
    torch.manual_seed(0)
    config = Config(vocab_size=13, context=12, d_model=16, n_heads=4, n_layers=2, n_kv_heads=n_kv_heads,
                    rotary=rotary)
    model = TransformerLM(config).double().eval()
    ids = torch.randint(13, (2, 12), generator=torch.Generator().manual_seed(1))
    cache = KVCache(config.n_layers)
    steps = [model(ids[:, :4], cache), model(ids[:, 4:7], cache)] + [model(ids[:, t : t + 1], cache)
                                                                    for t in range(7, 12)]
    assert_close(torch.cat(steps, 1), model(ids), **F64)
    assert all(k.shape == (2, n_kv_heads, 12, 4) for k in cache.keys)  # only the shared heads are kept
    assert cache.nbytes() == 2 * 2 * 2 * 12 * n_kv_heads * 4 * 8  # batch, k and v, layers, positions, h_kv d_head


def test_a_rotary_model_has_no_position_embedding_and_sees_positions_only_through_offsets():
    config = Config(vocab_size=7, context=10, d_model=16, n_heads=2, n_layers=1, rotary=True)
    torch.manual_seed(0)
    block = Block(config).double()
    x = torch.randn(1, 4, 16, dtype=torch.float64)
    moved = block(x, positions=torch.arange(5, 9)).x  # the same four tokens, five positions later
    assert_close(moved, block(x).x, **F64)  # rotary scores depend on the offset only
    assert TransformerLM(config).pos is None


def test_split_and_merge_heads_are_inverse_and_slice_features_per_head():
    t = torch.arange(2 * 5 * 12).view(2, 5, 12)
    heads = split_heads(t, 3)  # (2, 3, 5, 4)
    assert heads.shape == (2, 3, 5, 4) and torch.equal(heads[:, 1], t[..., 4:8])
    assert torch.equal(merge_heads(heads), t)


def test_dropout_is_off_in_eval_and_changes_training_outputs():
    torch.manual_seed(0)
    config = Config(vocab_size=5, context=8, d_model=16, n_heads=4, dropout=0.5)
    block, plain = Block(config), Block(Config(vocab_size=5, context=8, d_model=16, n_heads=4))
    plain.load_state_dict(block.state_dict())
    x = torch.randn(2, 8, 16)
    assert torch.equal(block.eval()(x).x, plain.eval()(x).x)
    assert not torch.allclose(block.train()(x).x, plain(x).x)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"n_heads": 3}, ValueError, "d_model=64 is not divisible by n_heads=3"),
    ({"n_kv_heads": 3}, ValueError, "n_heads=4 must be a multiple of n_kv_heads=3"),
    ({"n_kv_heads": 0}, ValueError, "n_kv_heads must be >= 1, got 0"),
    ({"d_model": 12, "n_heads": 4, "rotary": True}, ValueError, "d_head=3 must be even"),
    ({"rotary": "yes"}, TypeError, "rotary must be True or False, got 'yes'"),
    ({"pairing": "pairs"}, ValueError, "unknown pairing 'pairs'"),
    ({"dropout": 1.0}, ValueError, r"dropout must be a number in \[0, 1\), got 1.0"),
    ({"context": 2.5}, TypeError, "context must be an int, got float"),
])
def test_bad_configurations_get_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        Config(**{"vocab_size": 10, "context": 8, **kwargs})


def test_defaults_are_filled_in():
    config = Config(vocab_size=10, context=8, d_model=32, n_heads=4)
    assert (config.d_ff, config.n_kv_heads, config.d_head) == (128, 4, 8)


def test_bad_block_inputs_get_clear_errors():
    config = Config(vocab_size=10, context=8, d_model=16, n_heads=4)
    with pytest.raises(TypeError, match="Block takes a Config, got int"):
        Block(16)
    with pytest.raises(ValueError, match="memory must be given exactly when"):
        Block(config)(torch.randn(1, 3, 16), memory=torch.randn(1, 2, 16))
    with pytest.raises(ValueError, match="memory must be given exactly when"):
        Block(config, cross=True)(torch.randn(1, 3, 16))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., n, 16\), got \(1, 3, 8\)"):
        Block(config)(torch.randn(1, 3, 8))
    with pytest.raises(ValueError, match="a key-value cache needs causal attention"):
        Block(config, causal=False)(torch.randn(1, 3, 16), cache=KVCache(1))
    with pytest.raises(TypeError, match="causal must be True or False"):
        Block(config, causal="no")
    with pytest.raises(TypeError, match="TransformerLM takes a Config"):
        TransformerLM(10)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 10\), got ids from 0 to 10"):
        TransformerLM(config)(torch.tensor([[0, 10]]))


"""Low-precision attention on the CPU: whether it runs on float32 copies is timed once per dtype, head size and length
bucket, and either way the attention computes the same thing."""

import pytest
import torch

from anymae.model import layers


def test_the_choice_is_timed_once_per_dtype_head_size_and_length_bucket(monkeypatch):
    timed = []
    monkeypatch.setattr(layers, "_FLOAT32_IS_FASTER", {})
    monkeypatch.setattr(layers, "_float32_is_faster", lambda dtype, n, heads, dim: timed.append((dtype, n)) or n < 512)
    assert layers.cpu_attends_in_float32(torch.bfloat16, 50, 6, 64)
    assert layers.cpu_attends_in_float32(torch.bfloat16, 64, 6, 64)  # the same bucket: not timed again
    assert not layers.cpu_attends_in_float32(torch.bfloat16, 1568, 3, 64)
    assert not layers.cpu_attends_in_float32(torch.bfloat16, 10_000, 3, 64)  # past 2,048: the 2,048 tokens' answer
    layers.cpu_attends_in_float32(torch.float16, 50, 6, 64)
    assert timed == [(torch.bfloat16, 64), (torch.bfloat16, 2048), (torch.float16, 64)]


def test_the_timing_answers_for_real_tensors():
    assert isinstance(layers._float32_is_faster(torch.bfloat16, 16, 2, 8), bool)


@pytest.mark.parametrize("float32", [True, False])
def test_either_way_bf16_attention_matches_float32_attention(monkeypatch, float32):
    monkeypatch.setattr(layers, "cpu_attends_in_float32", lambda *args: float32)
    torch.manual_seed(0)
    attention = layers.Attention(32, num_heads=4, qkv_bias=True).eval()
    x = torch.randn(2, 40, 32)
    expected = attention(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = attention(x.bfloat16())
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), expected, atol=0.05, rtol=0.05)

"""Point-MAE's published pretraining file (Pang-Yatian/Point-MAE ``pretrain.pth``) read by the point-cloud plugin.

The repository is not on PyPI: the file is built here with its exact key names, shapes and nesting (``{"base_model":
{"module." + key: ...}, "optimizer": ..., "epoch": ...}``, as its DDP runs save it) from random weights at a tiny
size (128 wide: 2 heads of 64; 2 encoder and 2 decoder blocks; groups of 8 points), and what anymae makes of it is
compared with Point-MAE's forward pass written here from the raw tensors: the group embedding with ``conv1d`` and
``batch_norm`` in eval mode, the blocks with timm's ``Block`` (Point-MAE's has the same layout), Chamfer-L2 by brute
force.
"""

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import nn

import anymae
from anymae_pointcloud import PointMAEReader

WIDTH, DEPTH, DECODER_DEPTH, GROUP_SIZE, GROUPS, POINTS = 128, 2, 2, 8, 64, 256
HEADS = WIDTH // 64
TOLERANCE = 1e-5


def point_mae_block(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """One of Point-MAE's transformer blocks under its names (qkv without bias), random weights."""
    block = Block(WIDTH, HEADS, qkv_bias=False, norm_layer=partial(nn.LayerNorm, eps=1e-5))
    state = {}
    for name, value in block.state_dict().items():
        noise = torch.randn(value.shape, generator=generator)
        if value.dim() == 2:
            state[name] = noise * 0.5 / value.shape[1] ** 0.5
        else:
            state[name] = 1 + 0.1 * noise if name.startswith("norm") and name.endswith("weight") else 0.02 * noise
    return state


def conv(out: int, inp: int, g: torch.Generator, prefix: str) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.weight": torch.randn(out, inp, 1, generator=g) / inp**0.5,
        f"{prefix}.bias": torch.randn(out, generator=g) * 0.02,
    }


def batch_norm(channels: int, g: torch.Generator, prefix: str) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.weight": 1 + 0.1 * torch.randn(channels, generator=g),
        f"{prefix}.bias": 0.1 * torch.randn(channels, generator=g),
        f"{prefix}.running_mean": 0.1 * torch.randn(channels, generator=g),
        f"{prefix}.running_var": 0.5 + torch.rand(channels, generator=g),
        f"{prefix}.num_batches_tracked": torch.tensor(1000),
    }


def linear(out: int, inp: int, g: torch.Generator, prefix: str) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.weight": torch.randn(out, inp, generator=g) / inp**0.5,
        f"{prefix}.bias": torch.randn(out, generator=g) * 0.02,
    }


def point_mae_state(seed: int = 0, encoder_dims: int = WIDTH) -> dict[str, torch.Tensor]:
    """Point_MAE's state dict under its own names."""
    g = torch.Generator().manual_seed(seed)
    embed = "MAE_encoder.encoder."
    state = {
        **conv(128, 3, g, f"{embed}first_conv.0"),
        **batch_norm(128, g, f"{embed}first_conv.1"),
        **conv(256, 128, g, f"{embed}first_conv.3"),
        **conv(512, 512, g, f"{embed}second_conv.0"),
        **batch_norm(512, g, f"{embed}second_conv.1"),
        **conv(encoder_dims, 512, g, f"{embed}second_conv.3"),
        **linear(128, 3, g, "MAE_encoder.pos_embed.0"),
        **linear(WIDTH, 128, g, "MAE_encoder.pos_embed.2"),
        "MAE_encoder.norm.weight": 1 + 0.1 * torch.randn(WIDTH, generator=g),
        "MAE_encoder.norm.bias": 0.1 * torch.randn(WIDTH, generator=g),
        "mask_token": 0.02 * torch.randn(1, 1, WIDTH, generator=g),
        **linear(128, 3, g, "decoder_pos_embed.0"),
        **linear(WIDTH, 128, g, "decoder_pos_embed.2"),
        "MAE_decoder.norm.weight": 1 + 0.1 * torch.randn(WIDTH, generator=g),
        "MAE_decoder.norm.bias": 0.1 * torch.randn(WIDTH, generator=g),
        **conv(3 * GROUP_SIZE, WIDTH, g, "increase_dim.0"),
    }
    for i in range(DEPTH):
        state |= {f"MAE_encoder.blocks.blocks.{i}.{k}": v for k, v in point_mae_block(g).items()}
    for i in range(DECODER_DEPTH):
        state |= {f"MAE_decoder.blocks.{i}.{k}": v for k, v in point_mae_block(g).items()}
    return state


def save(tmp_path, state, name="pretrain.pth"):
    path = tmp_path / name
    optimizer = {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 1e-3, "params": [0]}]}
    base_model = {f"module.{k}": v for k, v in state.items()}  # saved from DDP
    torch.save({"base_model": base_model, "optimizer": optimizer, "epoch": 300, "metrics": {}}, path)
    return path


def clouds(batch: int = 2) -> torch.Tensor:
    points = torch.randn(batch, POINTS, 3, generator=torch.Generator().manual_seed(1))
    return points / points.norm(dim=-1).amax(dim=1)[:, None, None]


def reference_group_embedding(state, groups):
    """Point-MAE's ``Encoder.forward`` (its BatchNorm in eval mode): ``[B, G, k, 3]`` -> ``[B, G, C]``."""
    b, g, k, _ = groups.shape

    def conv_bn_conv(x, name):
        p = f"MAE_encoder.encoder.{name}."
        x = F.conv1d(x, state[f"{p}0.weight"], state[f"{p}0.bias"])
        x = F.batch_norm(
            x, state[f"{p}1.running_mean"], state[f"{p}1.running_var"], state[f"{p}1.weight"], state[f"{p}1.bias"]
        )
        return F.conv1d(F.relu(x), state[f"{p}3.weight"], state[f"{p}3.bias"])

    feature = conv_bn_conv(groups.reshape(b * g, k, 3).transpose(2, 1), "first_conv")  # [BG, 256, k]
    pooled = feature.max(dim=2, keepdim=True).values
    feature = conv_bn_conv(torch.cat([pooled.expand(-1, -1, k), feature], dim=1), "second_conv")
    return feature.max(dim=2).values.reshape(b, g, -1)


def mlp(state, prefix, x):
    x = F.gelu(F.linear(x, state[f"{prefix}0.weight"], state[f"{prefix}0.bias"]))
    return F.linear(x, state[f"{prefix}2.weight"], state[f"{prefix}2.bias"])


def transformer(state, prefix, depth, x, pos):
    """Point-MAE's ``TransformerEncoder``/``TransformerDecoder`` blocks: ``x = block(x + pos)``."""
    blocks = nn.ModuleList(
        Block(WIDTH, HEADS, qkv_bias=False, norm_layer=partial(nn.LayerNorm, eps=1e-5)) for _ in range(depth)
    )
    blocks.load_state_dict({k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)})
    for block in blocks.eval():
        x = block(x + pos)
    return x


def layer_norm(state, prefix, x):
    return F.layer_norm(x, (WIDTH,), state[f"{prefix}.weight"], state[f"{prefix}.bias"], 1e-5)


def reference_encoder(state, neighbourhoods, centres):
    """Point-MAE's ``MaskTransformer`` on the given groups."""
    x = reference_group_embedding(state, neighbourhoods)
    x = transformer(state, "MAE_encoder.blocks.blocks.", DEPTH, x, mlp(state, "MAE_encoder.pos_embed.", centres))
    return layer_norm(state, "MAE_encoder.norm", x)


def reference_loss(state, neighbourhoods, centres, hidden):
    """``Point_MAE.forward`` for a given mask (True = hidden): Chamfer-L2 of the hidden groups' points."""
    b, _, k, _ = neighbourhoods.shape
    keep = ~hidden
    visible = reference_encoder(state, neighbourhoods[keep].reshape(b, -1, k, 3), centres[keep].reshape(b, -1, 3))
    pos_visible = mlp(state, "decoder_pos_embed.", centres[keep]).reshape(b, -1, WIDTH)
    pos_hidden = mlp(state, "decoder_pos_embed.", centres[hidden]).reshape(b, -1, WIDTH)
    m = pos_hidden.shape[1]
    x = torch.cat([visible, state["mask_token"].expand(b, m, -1)], dim=1)
    x = transformer(state, "MAE_decoder.blocks.", DECODER_DEPTH, x, torch.cat([pos_visible, pos_hidden], dim=1))
    x = layer_norm(state, "MAE_decoder.norm", x[:, -m:])
    rebuilt = F.conv1d(x.transpose(1, 2), state["increase_dim.0.weight"], state["increase_dim.0.bias"])
    rebuilt = rebuilt.transpose(1, 2).reshape(b * m, -1, 3)
    truth = neighbourhoods[hidden].reshape(b * m, -1, 3)
    squared = ((rebuilt[:, :, None] - truth[:, None]) ** 2).sum(-1)  # brute force: every pair
    return squared.min(dim=2).values.mean() + squared.min(dim=1).values.mean()


def max_diff(a, b):
    return (a - b).abs().max().item()


def test_reader_maps_every_weight_and_says_what_it_assumed(tmp_path):
    imported = anymae.read_weights(save(tmp_path, point_mae_state()))
    assert imported.left_out == []
    assert imported.missing == [
        "tokenizer.num_groups: not stored in the file; Point-MAE's 64 (its pretraining config, 1024 points per "
        "cloud) is used",
        "num_heads: not stored in the file; 2 (64 features per head, as Point-MAE's 6 for 384 wide) is used in the "
        "encoder and the decoder",
        "drop_path_rate: not stored in the file; Point-MAE's 0.1 (its pretraining config) is used in the encoder and "
        "the decoder, for pretraining further",
    ]
    tokenizer = imported.parts["tokenizer"]["init_args"]
    assert (tokenizer["num_groups"], tokenizer["group_size"], tokenizer["dim"]) == (64, GROUP_SIZE, WIDTH)
    ratio = imported.parts["masker"]["init_args"]["mask_ratio"]
    assert GROUPS - int(GROUPS * (1 - ratio)) == int(0.6 * GROUPS) == 38  # the groups Point-MAE hides
    model = anymae.MaskedAutoencoder.from_config(imported.parts)
    assert set(model.state_dict()) == set(imported.state)  # nothing left as initialised


def test_group_embedding_and_encoder_features_equal_point_mae(tmp_path):
    state = point_mae_state()
    encoder = anymae.load_encoder(save(tmp_path, state))
    points = clouds()
    with torch.no_grad():
        centres, neighbourhoods, _ = encoder.tokenizer.group(points)
        embedding = encoder.tokenizer({"points": points}).tokens
        features = encoder({"points": points}).tokens
        reference_embedding = reference_group_embedding(state, neighbourhoods)
        reference = reference_encoder(state, neighbourhoods, centres)
    print(f"Point-MAE group embedding: max |diff| = {max_diff(embedding, reference_embedding):.2e}")
    print(f"Point-MAE encoder features: max |diff| = {max_diff(features, reference):.2e}")
    assert features.shape == (2, GROUPS, WIDTH)
    assert max_diff(embedding, reference_embedding) < TOLERANCE and max_diff(features, reference) < TOLERANCE


def test_loss_equals_point_mae_chamfer_loss(tmp_path):
    state = point_mae_state()
    model = anymae.load_model(save(tmp_path, state))
    points = clouds()
    noise = torch.rand(2, GROUPS, generator=torch.Generator().manual_seed(2))
    hidden = torch.zeros(2, GROUPS, dtype=torch.bool).scatter(1, noise.argsort(dim=1)[:, :38], True)
    with torch.no_grad():
        ours = model({"points": points}, mask=hidden).loss
        centres, neighbourhoods, _ = model.tokenizer.group(points)
        reference = reference_loss(state, neighbourhoods, centres, hidden)
    diff = max_diff(ours, reference)
    print(f"Point-MAE Chamfer-L2 loss: ours {ours.item():.6f}, reference {reference.item():.6f}, |diff| {diff:.2e}")
    assert diff < TOLERANCE


def test_files_that_cannot_be_mapped_say_what(tmp_path):
    finetuned = {
        k.removeprefix("MAE_encoder."): v for k, v in point_mae_state().items() if k.startswith("MAE_encoder.")
    }
    finetuned |= {"cls_token": torch.zeros(1, 1, WIDTH), "cls_pos": torch.randn(1, 1, WIDTH)}
    finetuned |= linear(40, 256, torch.Generator().manual_seed(0), "cls_head_finetune.8")
    with pytest.raises(anymae.ConfigError, match=r"fine-tuned Pang-Yatian/Point-MAE PointTransformer.*\(cls_pos\)"):
        anymae.read_weights(save(tmp_path, finetuned, "finetune.pth"))
    with pytest.raises(anymae.ConfigError, match="group embedding 96 wide for a transformer 128 wide"):
        anymae.read_weights(save(tmp_path, point_mae_state(encoder_dims=96)))
    state = point_mae_state()
    del state["MAE_encoder.norm.bias"]
    with pytest.raises(anymae.ConfigError, match=r"without MAE_encoder\.norm\.bias"):
        anymae.read_weights(save(tmp_path, state))
    assert not PointMAEReader().detect(
        anymae.WeightsFile(tmp_path, {"model": {"blocks.0.norm1.weight": torch.ones(2)}})
    )

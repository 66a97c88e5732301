"""Tiny, randomly initialised models with the real architectures, saved like checkpoints."""

from __future__ import annotations

from pathlib import Path


def build_tiny_dia(folder: Path) -> Path:
    """A one-layer Dia and a tiny DAC codec, written as a local checkpoint folder."""
    import torch
    from transformers import (
        DacConfig,
        DacModel,
        DiaConfig,
        DiaDecoderConfig,
        DiaEncoderConfig,
        DiaFeatureExtractor,
        DiaForConditionalGeneration,
        DiaProcessor,
        DiaTokenizer,
    )

    torch.manual_seed(0)
    encoder = DiaEncoderConfig(
        num_hidden_layers=1, hidden_size=32, num_attention_heads=2, num_key_value_heads=2,
        head_dim=16, intermediate_size=64, max_position_embeddings=512,
    )  # fmt: skip
    decoder = DiaDecoderConfig(
        num_hidden_layers=1, hidden_size=32, intermediate_size=64, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, cross_num_attention_heads=2, cross_head_dim=16,
        cross_num_key_value_heads=2, cross_hidden_size=32, max_position_embeddings=4096,
    )  # fmt: skip
    model = DiaForConditionalGeneration(DiaConfig(encoder_config=encoder, decoder_config=decoder))
    codec = DacModel(
        DacConfig(
            encoder_hidden_size=8, downsampling_ratios=[4, 8], decoder_hidden_size=16,
            n_codebooks=9, codebook_size=1024, codebook_dim=4, sampling_rate=44100,
        )
    )  # fmt: skip
    processor = DiaProcessor(
        feature_extractor=DiaFeatureExtractor(sampling_rate=44100, hop_length=32),
        tokenizer=DiaTokenizer(),
        audio_tokenizer=codec,
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    codec.save_pretrained(folder / "dac")
    return folder


def build_random_wav2lip(path: Path) -> Path:
    """The real Wav2Lip generator, randomly initialised, saved the way its training code saves
    checkpoints (``state_dict`` with DataParallel's ``module.`` prefixes)."""
    import torch

    from reelforge.lipsync.backends.wav2lip import build_model

    torch.manual_seed(0)
    model = build_model()
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "global_step": 0, "global_epoch": 0}, path)
    return path

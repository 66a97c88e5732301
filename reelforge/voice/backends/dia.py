"""``dia``: Nari Labs' Dia run locally through Hugging Face transformers.

Weights come from a local folder or a hub id the user gives (``--model``); the DAC audio
codec from ``codec`` or the folder's ``dac/`` subfolder, else the id the processor config
names. bf16 on a GPU, float32 on the CPU. Voices are cloned the way Dia's authors describe:
the reference transcript is put before the new text, the reference audio is the decoder's
prompt, and only the audio after the prompt is kept. Sampling: guidance scale, temperature,
top-p, top-k, and a seed per speaker.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path

import numpy as np

from reelforge.errors import InputError
from reelforge.voice import post
from reelforge.voice.backends.base import BackendDefaults, Chunk, Synthesis

DEFAULT_CODEC = "descript/dac_44khz"
FRAMES_PER_SECOND = 86  # DAC 44.1 kHz with a 512-sample hop
DIA_SPEAKERS = {"S1", "S2"}


class DiaBackend(BackendDefaults):
    name = "dia"
    uses_prompts = True

    def __init__(
        self,
        model: str | None = None,
        codec: str | None = None,
        device: str | None = None,
        guidance_scale: float = 3.0,
        temperature: float = 1.8,
        top_p: float = 0.90,
        top_k: int = 45,
        max_new_tokens: int | None = None,
        **_,
    ) -> None:
        if not model:
            raise InputError(
                "the dia backend needs --model: a folder or hub id of Dia weights "
                "(for example nari-labs/Dia-1.6B-0626)"
            )
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError:
            raise InputError(
                "the dia backend needs the optional extra: pip install 'reelforge[dia]'"
            ) from None
        self.model_id = model
        self.codec_id = codec
        self.device_name = device
        self.max_new_tokens = max_new_tokens
        self.params = {"guidance_scale": guidance_scale, "temperature": temperature,
                       "top_p": top_p, "top_k": top_k}  # fmt: skip

    @property
    def model(self) -> str:
        return f"dia/{self.model_id}"

    @cached_property
    def device(self):
        import torch

        if self.device_name:
            return torch.device(self.device_name)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def _codec_source(self) -> str:
        if self.codec_id:
            return self.codec_id
        folder = Path(self.model_id)
        if (folder / "dac" / "config.json").is_file():
            return str(folder / "dac")
        config = folder / "processor_config.json"
        if config.is_file():
            named = json.loads(config.read_text()).get("audio_tokenizer", {})
            if named.get("audio_tokenizer_name_or_path"):
                return named["audio_tokenizer_name_or_path"]
        return DEFAULT_CODEC

    @cached_property
    def _loaded(self):
        import torch
        from transformers import (
            DacModel,
            DiaFeatureExtractor,
            DiaForConditionalGeneration,
            DiaProcessor,
            DiaTokenizer,
        )

        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        model = DiaForConditionalGeneration.from_pretrained(self.model_id, dtype=dtype)
        model = model.to(self.device).eval()
        codec = DacModel.from_pretrained(self._codec_source()).to(self.device).eval()
        processor = DiaProcessor(
            feature_extractor=DiaFeatureExtractor.from_pretrained(self.model_id),
            tokenizer=DiaTokenizer.from_pretrained(self.model_id),
            audio_tokenizer=codec,
        )
        return model, processor

    def synthesize(self, chunk: Chunk, voices, prompts) -> Synthesis:
        import torch

        speakers = list(dict.fromkeys(line.speaker for line in chunk.lines))
        if not set(speakers) <= DIA_SPEAKERS:
            raise InputError("Dia speaks [S1] and [S2] only; map other speakers to them")
        model, processor = self._loaded
        rate = processor.feature_extractor.sampling_rate
        text = chunk.dia_text()
        prompt_audio: list[np.ndarray] = []
        prompt_text: list[str] = []
        for s in speakers:
            if s in prompts:
                audio, prompt_rate, transcript = prompts[s]
                prompt_audio.append(post.resample(audio, prompt_rate, rate))
                prompt_text.append(f"[{s}] {transcript}")
        spec = voices.get(speakers[0])
        seed = spec.seed if spec is not None and spec.seed is not None else 0
        torch.manual_seed(seed)
        if self.device.type == "cuda":
            torch.cuda.manual_seed_all(seed)
        kwargs = {"text": [" ".join([*prompt_text, text])], "padding": True, "return_tensors": "pt"}
        if prompt_audio:
            kwargs["audio"] = [np.concatenate(prompt_audio).astype(np.float32)]
        inputs = processor(**kwargs).to(self.device)
        prompt_len = (
            processor.get_audio_prompt_len(inputs["decoder_attention_mask"])
            if prompt_audio
            else None
        )
        words = sum(len(line.dia_text().split()) for line in chunk.lines)
        budget = self.max_new_tokens or min(3072, int((words / 2.0 + 2) * FRAMES_PER_SECOND))
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=budget, do_sample=True, **self.params)
        audio = processor.batch_decode(out, audio_prompt_len=prompt_len)[0]
        samples = audio.float().cpu().numpy().reshape(-1).astype(np.float32)
        return Synthesis(
            samples, rate, None, self.model, extra={"seed": seed, "frames": int(out.shape[1])}
        )

"""CycleGAN-VC and CycleGAN-VC2: non-parallel voice conversion between two speakers (Kaneko & Kameoka 2018;
Kaneko, Kameoka, Tanaka & Hojo 2019).

Data: normalised WORLD mel-cepstra segments a, b [N, D, F] of speakers A and B (``data/voice.py``). Two gated-CNN
generators G_ab, G_ba (``nets/cyclegan_vc.py``), PatchGAN discriminators D_a, D_b, and with VC2's two-step
adversarial loss two more, D2_a, D2_b, on the cycled features. Objective (VC1 eq. 4; VC2 eq. 5), least squares:

    L_adv(G_ab, D_b)  = E_b[(D_b(b) - 1)^2] + E_a[D_b(G_ab(a))^2]                  (D side, x 1/2 as in CycleGAN)
    L_cyc             = E_a |G_ba(G_ab(a)) - a|_1 + E_b |G_ab(G_ba(b)) - b|_1       lambda_cyc = 10
    L_id              = E_b |G_ab(b) - b|_1 + E_a |G_ba(a) - a|_1                   lambda_id = 5, first 10^4
                                                                                   iterations only (VC1 sec. 4.1)
    L_adv2 (VC2 sec. 3.1): D2_a judges a against the cycled G_ba(G_ab(a)) (and D2_b likewise), so the cycle
                       is also pushed towards real speech, which "mitigates the over-smoothing caused by L1".

Optimisers (VC1 sec. 4.1 / VC2 sec. 4.1): Adam, G 2e-4, D 1e-4, beta1 0.5; batch 1; lr constant, then linearly
to zero (here: after ``lr_decay_start`` of training).

Using the model: ``VoiceConverter`` (sampler kind "convert", ``gankit convert``) analyses a wav with WORLD,
normalises its mel-cepstra with the source speaker's statistics, runs G, de-normalises with the target's,
converts log F0 by the log-Gaussian normalised transform, keeps the aperiodicity and resynthesises with WORLD.
``evaluate`` reports mel-cepstral distortion (MCD, dB) of the converted test utterances to the true target
utterances (the same words by the target speaker: ``digit-voices`` test split), after DTW, with two references:
before conversion (source vs target) and the network-free baseline that maps each coefficient by the two
speakers' means and deviations (``mcd_stats_only``), which a trained generator should beat.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..artefacts import ImageGrid
from ..errors import ConfigError
from ..nets import build_net, discriminators, generators
from ..samplers import EvalRequest, Sampler, sampler_kinds
from .audio import AudioClips
from .base import Recipe, StepContext, recipes
from .translation import adversarial_loss, check_fraction, eval_mode, linear_decay


@dataclass
class CycleGANVCOptions:
    two_step: bool = False          # VC2's two-step adversarial loss (extra discriminators on cycled features)
    cycle_weight: float = 10.0      # lambda_cyc (VC1 sec. 4.1: 10)
    identity_weight: float = 5.0    # lambda_id (VC1 sec. 4.1: 5)
    identity_kimg: float = 10.0     # identity loss only for the first 10^4 iterations at batch 1 (0 = always)
    lr_decay_start: float = 0.5     # fraction of training after which the lr decays linearly to 0

    def __post_init__(self) -> None:
        for name in ("cycle_weight", "identity_weight", "identity_kimg"):
            if getattr(self, name) < 0:
                raise ConfigError(f"cyclegan-vc: {name} must be >= 0, got {getattr(self, name)}.")
        check_fraction(self.lr_decay_start, "cyclegan-vc: lr_decay_start")


def _check_voice_net(role: str, arch: str) -> None:
    reg = generators if role == "G" else discriminators
    if getattr(reg.get(arch), "kind", None) != "voice":
        valid = [n for n, c in reg.items() if getattr(c, "kind", None) == "voice"]
        raise ConfigError(f"{role}.image = {arch!r} is not a voice-conversion network; valid: {', '.join(valid)}.")


@recipes.register("cyclegan-vc")
class CycleGANVC(Recipe):
    Options = CycleGANVCOptions
    data_kinds = ("voice",)
    generator_names = ("G_ab", "G_ba")
    discriminator_names: ClassVar[tuple[str, ...]] = ("D_a", "D_b")
    sampler_kind = "convert"

    def __init__(self, nets: dict[str, nn.Module], opts: CycleGANVCOptions, info: Any):
        super().__init__(nets, opts, info)
        # Per-instance: VC2 adds the two-step discriminators to the D optimiser.
        self.discriminator_names = ("D_a", "D_b", "D2_a", "D2_b") if opts.two_step else ("D_a", "D_b")

    @classmethod
    def from_config(cls, cfg: Any, info: Any) -> "CycleGANVC":
        opts: CycleGANVCOptions = cls.parse_options(cfg.opts)
        _check_voice_net("G", cfg.G.image)
        _check_voice_net("D", cfg.D.image)
        dim = int(info.extras["mcep_dim"])
        g = {"in_channels": dim, "out_channels": dim}
        nets = {"G_ab": build_net("G", cfg.G, info.kind, g, "G_ab"), "G_ba": build_net("G", cfg.G, info.kind, g, "G_ba")}
        for name in ("D_a", "D_b") + (("D2_a", "D2_b") if opts.two_step else ()):
            nets[name] = build_net("D", cfg.D, info.kind, {"in_channels": dim}, name)
        recipe = cls(nets, opts, info)
        recipe.d_steps = cfg.d_steps
        return recipe

    # ---- objective ----------------------------------------------------------------------------------------
    @staticmethod
    def _d_pair(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """0.5 [(D(real) - 1)^2 + D(fake)^2], patch means (least squares; Mao et al. 2017)."""
        return 0.5 * (adversarial_loss(D(real), True, "lsgan") + adversarial_loss(D(fake), False, "lsgan"))

    def d_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        n = self.nets
        real_a, real_b = batch["a"], batch["b"]                                   # [N, D, F]
        with torch.no_grad():
            fake_b, fake_a = n["G_ab"](real_a), n["G_ba"](real_b)
        d_a, d_b = self._d_pair(n["D_a"], real_a, fake_a), self._d_pair(n["D_b"], real_b, fake_b)
        out = {"d_a": d_a.detach(), "d_b": d_b.detach()}
        loss = d_a + d_b
        if self.opts.two_step:
            with torch.no_grad():
                cycle_a, cycle_b = n["G_ba"](fake_b), n["G_ab"](fake_a)
            d2_a, d2_b = self._d_pair(n["D2_a"], real_a, cycle_a), self._d_pair(n["D2_b"], real_b, cycle_b)
            loss = loss + d2_a + d2_b
            out.update(d2_a=d2_a.detach(), d2_b=d2_b.detach())
        return {"loss": loss, **out}

    def g_loss(self, batch: dict[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        n, o = self.nets, self.opts
        real_a, real_b = batch["a"], batch["b"]
        fake_b, fake_a = n["G_ab"](real_a), n["G_ba"](real_b)
        cycle_a, cycle_b = n["G_ba"](fake_b), n["G_ab"](fake_a)
        adv = adversarial_loss(n["D_b"](fake_b), True, "lsgan") + adversarial_loss(n["D_a"](fake_a), True, "lsgan")
        cyc = F.l1_loss(cycle_a, real_a) + F.l1_loss(cycle_b, real_b)
        loss = adv + o.cycle_weight * cyc
        out = {"g_adv": adv.detach(), "cycle": cyc.detach()}
        if o.two_step:
            adv2 = adversarial_loss(n["D2_a"](cycle_a), True, "lsgan") + \
                adversarial_loss(n["D2_b"](cycle_b), True, "lsgan")
            loss = loss + adv2
            out["g_adv2"] = adv2.detach()
        if o.identity_weight > 0 and (o.identity_kimg == 0 or ctx.kimg < o.identity_kimg):
            idt = F.l1_loss(n["G_ab"](real_b), real_b) + F.l1_loss(n["G_ba"](real_a), real_a)
            loss = loss + o.identity_weight * idt
            out["identity"] = idt.detach()
        return {"loss": loss, **out}

    def lr_multiplier(self, progress: float) -> float:
        return linear_decay(progress, self.opts.lr_decay_start)

    # ---- using the model ----------------------------------------------------------------------------------
    def fixed_inputs(self, n: int, seed: int, dataset: Any) -> dict[str, Any]:
        """A few segments of each speaker (for the feature picture) and one whole utterance of A with
        their F0 and aperiodicity (for the converted sound), when the dataset keeps them."""
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(dataset), generator=g)[: min(n, 8, len(dataset))]
        batch = dataset.get_batch(idx)
        return {"a": batch["a"].cpu(), "b": batch["b"].cpu(), "utterances": list(getattr(dataset, "sources", []))[:1]}

    @torch.no_grad()
    def snapshot(self, fixed: dict[str, Any], nets: nn.ModuleDict) -> list:
        """Rows A, G_ab(A), G_ba(G_ab(A)) of mel-cepstra pictures (clipped at 3 std), and the converted utterances."""
        G_ab, G_ba = nets["G_ab"], nets["G_ba"]
        device = next(G_ab.parameters()).device
        a = fixed["a"].to(device)
        with eval_mode(G_ab), eval_mode(G_ba):
            fake_b = G_ab(a)
            rows = [a, fake_b, G_ba(fake_b)]
        pictures = torch.cat([(r / 3).clamp(-1, 1).flip(1)[:, None].cpu() for r in rows])  # [3n, 1, D, F]
        out: list = [ImageGrid(pictures, nrow=len(a), name="features", suffix=".png")]
        if fixed.get("utterances"):
            converter = VoiceConverter(self, nets)
            clips = [converter.convert_features(u)[0] for u in fixed["utterances"]]
            length = max(len(c) for c in clips)
            clips_t = torch.stack([torch.from_numpy(np.pad(c, (0, length - len(c)))).float() for c in clips])
            out.append(AudioClips(clips_t[:, None].clamp(-1, 1), converter.rate, name="converted"))
        return out

    def samplers(self, nets: nn.ModuleDict | None = None) -> dict[str, "VoiceConverter"]:
        return {"default": VoiceConverter(self, nets if nets is not None else self.nets)}


@sampler_kinds.register("convert")
class VoiceConverter(Sampler):
    """wav of speaker A (or B) -> the same words in the other speaker's voice, through WORLD and G_ab (G_ba)."""

    kind = "convert"
    commands = ("convert",)
    output = "audio"

    def __init__(self, recipe: CycleGANVC, nets: nn.ModuleDict, direction: str = "AtoB"):
        if direction not in ("AtoB", "BtoA"):
            raise ConfigError(f"direction must be AtoB or BtoA, got {direction!r}.")
        self.recipe, self.nets, self.direction = recipe, nets, direction
        x = recipe.info.extras
        self.rate, self.frame_period = int(x["vc_rate"]), float(x["frame_period"])
        src, dst = ("a", "b") if direction == "AtoB" else ("b", "a")
        self.net = nets["G_ab" if direction == "AtoB" else "G_ba"]
        self.mean_in, self.std_in = np.array(x[f"mcep_mean_{src}"]), np.array(x[f"mcep_std_{src}"])
        self.mean_out, self.std_out = np.array(x[f"mcep_mean_{dst}"]), np.array(x[f"mcep_std_{dst}"])
        self.lf0_in, self.lf0_out = (x[f"lf0_mean_{src}"], x[f"lf0_std_{src}"]), (x[f"lf0_mean_{dst}"], x[f"lf0_std_{dst}"])

    def for_direction(self, direction: str | None) -> "VoiceConverter":
        return VoiceConverter(self.recipe, self.nets, direction or "AtoB")

    @torch.no_grad()
    def convert_mcep(self, mcep: np.ndarray) -> np.ndarray:
        """Mel-cepstra [F, D] of the source speaker -> [F, D] of the target (normalise, G, de-normalise). The
        frames are padded by reflection to the generator's multiple and cropped back."""
        frames = len(mcep)
        x = torch.from_numpy(((mcep - self.mean_in) / self.std_in).T.copy()).float()[None]   # [1, D, F]
        multiple = getattr(self.net, "size_multiple", 1)
        pad = -frames % multiple
        if pad:
            x = F.pad(x, (0, pad), mode="reflect" if pad < frames else "replicate")
        device = next(self.net.parameters()).device
        with eval_mode(self.net):
            y = self.net(x.to(device))[0, :, :frames].cpu().double().numpy().T              # [F, D]
        return y * self.std_out + self.mean_out

    def convert_features(self, feats: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """WORLD features of an utterance -> (converted waveform [T] at ``rate``, converted mel-cepstra [F, D])."""
        from ..data.voice import convert_f0, world_synthesis
        mcep = self.convert_mcep(feats["mcep"])
        f0 = convert_f0(feats["f0"], self.lf0_in, self.lf0_out)
        wave = world_synthesis(f0, mcep, feats["ap"], self.rate, self.frame_period)
        return np.clip(wave, -1.0, 1.0), mcep

    def convert(self, wave: np.ndarray, rate: int) -> np.ndarray:
        """A waveform [T] at ``rate`` -> the converted waveform [T'] at ``self.rate``."""
        from .. import audio as dsp
        from ..data.voice import world_features
        x = dsp.resample(wave, rate, self.rate)
        feats = world_features(x, self.rate, len(self.mean_in), self.frame_period)
        return self.convert_features(feats)[0]

    @classmethod
    def check_metrics(cls, names: Any) -> None:
        wrong = [m for m in ([names] if isinstance(names, str) else names or []) if m != "mcd"]
        if wrong:
            raise ConfigError(f"Voice conversion models are scored with mcd (mel-cepstral distortion), not {wrong}.")

    def evaluate(self, r: EvalRequest) -> dict[str, Any]:
        """MCD (dB) after DTW of converted test utterances to the target speaker saying the same words."""
        import dataclasses

        from ..data import load_dataset
        from ..data.voice import mel_cepstral_distortion
        self.check_metrics(r.metrics or ["mcd"])
        data = r.data
        if r.ref:
            data = dataclasses.replace(data, spec=r.ref)
        if r.root:
            data = dataclasses.replace(data, root=r.root)
        test = load_dataset(dataclasses.replace(data, split=r.split or "test"), ("voice",))
        pairs = getattr(test, "parallel", [])
        if not pairs:
            raise ConfigError(f"{data.spec!r} has no parallel test utterances, which MCD needs (the digit-voices "
                              "builtin has them in its test split).")
        pairs = pairs[: r.n] if r.n else pairs
        src_key, dst_key = (0, 1) if self.direction == "AtoB" else (1, 0)
        before, stats_only, after = [], [], []
        for pair in pairs:
            source, target = pair[src_key], pair[dst_key]
            before.append(mel_cepstral_distortion(source["mcep"], target["mcep"]))
            # Baseline without the network: each coefficient mapped by the speakers' means and deviations.
            affine = (source["mcep"] - self.mean_in) / self.std_in * self.std_out + self.mean_out
            stats_only.append(mel_cepstral_distortion(affine, target["mcep"]))
            after.append(mel_cepstral_distortion(self.convert_mcep(source["mcep"]), target["mcep"]))
        return {"metrics": {"mcd": float(np.mean(after)), "mcd_std": float(np.std(after)),
                            "mcd_before": float(np.mean(before)), "mcd_stats_only": float(np.mean(stats_only))},
                "protocol": {"generated": {"direction": self.direction}, "n_gen": len(pairs), "n_ref": len(pairs),
                             "metric": "mel-cepstral distortion, dB, c1..c(D-1), DTW (Euclidean), mean over "
                                       "aligned frames then utterances",
                             "utterances": len(pairs), "direction": self.direction, "data": data.spec,
                             "split": r.split or "test",
                             "features": "WORLD (DIO+StoneMask, CheapTrick) -> sp2mc; converted in feature space"},
                "note": f"MCD {np.mean(after):.2f} dB after conversion vs {np.mean(before):.2f} dB between the "
                        f"two speakers ({len(pairs)} parallel test utterances)"}

"""Denoising policies: flow-matching generators sampled as an SDE, one log-prob per denoising step (Flow-GRPO).

Paper: Liu et al., "Flow-GRPO: Training Flow Matching Models via Online RL" (arXiv 2505.05470); official code
`yifan123/flow_grpo` (`pipeline_with_logprob`, `sde_step_with_logprob`, `train_sd3.py`). The step kernel and the
KL on step means live in `mmpost.algos.flow_sde`; this module wires them into the engine's policy-kind contract:

- a trajectory is the chain x_0 (noise, σ = 1) -> x_1 -> ... -> x_K (σ = 0, the sample); the K steps are the
  units that get a log-prob, so `completion_ids` is K dummy zeros and `RolloutBatch.aux` stores the chain:
  `latents` [N, K+1, *latent_shape] and `sigmas` [N, K+1];
- `SDEBackend.generate` samples the chain with Flow-GRPO's SDE step (noise_level a; greedy = the Euler ODE);
- `DenoisingPolicy.logprobs` re-runs the velocity net on the stored x_k and evaluates the Gaussian step density
  at the stored x_{k+1} (fp32, averaged over non-batch dims), so the ratio is exactly 1 before the first update;
- `DenoisingPolicy.kl_terms` is the KL between the policy's and the reference's step means, ‖μ - μ_ref‖²/(2σ_t²);
- which steps are trained (`train_steps`): "all", "first:k", "window:a:b" (Flow-GRPO-Fast / MixGRPO style), or
  "random:k" (k steps drawn per rollout call, like DanceGRPO's timestep fraction). With `sde_steps: trained`
  the untrained steps run as ODE steps (noise 0), as in Flow-GRPO-Fast; with "all" every step is stochastic.

A generator folder holds a diffusers `ModelMixin` (`save_pretrained`), `scheduler/` (a
`FlowMatchEulerDiscreteScheduler`, whose shifted sigmas are the schedule) and `mmpost_generator.json`:
{"model_class": "package.module:Class", "sampler": {latent_shape, num_steps, noise_level, train_steps, sde_steps,
output_range}}. The velocity net is called as `model(x_σ, σ·1000, **conditioning)` (a tensor, or an output with
`.sample`), where the conditioning tensors come from the task (`task.conditioning(sample) -> dict[str, Tensor]`).

Engine level: torch only at import; diffusers is imported inside the functions that need it.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from mmpost.algos.flow_sde import flow_grpo_kl, sde_step_with_logprob
from mmpost.experience import RolloutBatch
from mmpost.registry import POLICIES, ROLLOUT_BACKENDS
from mmpost.rollout.base import GenerationResult, SamplingParams
from mmpost.types import PromptEncoding, Sample

_WHERE = __name__
GENERATOR_FILE = "mmpost_generator.json"
SCHEDULER_FOLDER = "scheduler"


# -- sampler settings and the step schedule ------------------------------------------------------------------
@dataclass(frozen=True)
class SamplerSettings:
    """How a generator is sampled and trained as a denoising policy (the `sampler` block of mmpost_generator.json)."""

    latent_shape: tuple[int, ...]
    num_steps: int = 10
    noise_level: float = 0.7
    train_steps: str = "all"
    sde_steps: str = "all"
    output_range: tuple[float, float] = (-1.0, 1.0)

    @classmethod
    def from_dict(cls, values: dict, where: str) -> "SamplerSettings":
        """Validated settings; `where` (a file name) prefixes every error."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{where}: sampler has unknown field(s) {unknown}; known: {sorted(known)}")
        if "latent_shape" not in values:
            raise ValueError(f"{where}: sampler.latent_shape is required (the per-row latent shape, e.g. [3, 16, 16])")
        settings = cls(**{**values, "latent_shape": tuple(int(v) for v in values["latent_shape"]),
                          "output_range": tuple(float(v) for v in values.get("output_range", (-1.0, 1.0)))})
        if not settings.latent_shape or min(settings.latent_shape) < 1:
            raise ValueError(f"{where}: sampler.latent_shape must be positive sizes, got {list(settings.latent_shape)}")
        if settings.num_steps < 1:
            raise ValueError(f"{where}: sampler.num_steps must be >= 1, got {settings.num_steps}")
        if settings.noise_level < 0:
            raise ValueError(f"{where}: sampler.noise_level must be >= 0, got {settings.noise_level}")
        if settings.sde_steps not in ("all", "trained"):
            raise ValueError(f"{where}: sampler.sde_steps must be 'all' or 'trained', got {settings.sde_steps!r}")
        low, high = settings.output_range
        if not low < high:
            raise ValueError(f"{where}: sampler.output_range must be [low, high] with low < high, got {[low, high]}")
        trained_step_mask(settings.train_steps, settings.num_steps, where=where)  # validates the spec
        return settings


def trained_step_mask(spec: str, num_steps: int, *, generator: torch.Generator | None = None,
                      where: str = _WHERE) -> torch.Tensor:
    """Which of the K denoising steps get a log-prob in the loss: bool [K].

    "all" | "first:k" (steps 0..k-1, the high-noise end) | "window:a:b" (steps a..b-1) | "random:k" (k distinct
    steps drawn with `generator`).
    """
    kind, _, rest = spec.partition(":")
    try:
        numbers = [int(v) for v in rest.split(":")] if rest else []
    except ValueError:
        numbers = None
    mask = torch.zeros(num_steps, dtype=torch.bool)
    if kind == "all" and numbers == []:
        mask[:] = True
    elif kind in ("first", "random") and numbers is not None and len(numbers) == 1 and 1 <= numbers[0] <= num_steps:
        if kind == "first":
            mask[: numbers[0]] = True
        else:
            mask[torch.randperm(num_steps, generator=generator)[: numbers[0]]] = True
    elif kind == "window" and numbers is not None and len(numbers) == 2 and 0 <= numbers[0] < numbers[1] <= num_steps:
        mask[numbers[0] : numbers[1]] = True
    else:
        raise ValueError(f"{where}: train_steps {spec!r} is not one of 'all', 'first:k', 'window:a:b', 'random:k' "
                         f"with 1 <= k <= {num_steps} and 0 <= a < b <= {num_steps}")
    return mask


def flow_match_sigmas(num_steps: int, *, shift: float = 1.0, scheduler: Any = None) -> torch.Tensor:
    """The K+1 sigmas (1 -> 0) of diffusers' FlowMatchEulerDiscreteScheduler after `set_timesteps(K)`: fp32 [K+1].

    A given `scheduler` is used as is (its config decides the shift); otherwise one is built with `shift`.
    """
    if scheduler is None:
        from diffusers import FlowMatchEulerDiscreteScheduler

        scheduler = FlowMatchEulerDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(num_steps, device="cpu")
    return scheduler.sigmas.detach().float().clone()


def flow_matching_loss(model: torch.nn.Module, x0: torch.Tensor, condition: dict[str, torch.Tensor], *,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """Rectified-flow / flow-matching regression loss for SFT pre-training of a generator -> scalar.

    Liu et al. 2023 (rectified flow), Lipman et al. 2023 (flow matching), in the SD3 / diffusers
    FlowMatchEuler convention: σ ~ U(0, 1) per sample, ε ~ N(0, I), x_σ = (1 - σ)·x0 + σ·ε, and the net regresses
    the constant velocity of that straight path, v = ε - x0:  L = mean ‖v_θ(x_σ, σ·1000 | c) - (ε - x0)‖².
    (SD3 samples σ from a logit-normal; the uniform draw is the original rectified-flow choice.)
    x0: data [B, ...]; condition: keyword tensors for the net, dim 0 = B.
    """
    noise_device = generator.device if generator is not None else x0.device
    sigma = torch.rand(x0.shape[0], generator=generator, device=noise_device).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=noise_device).to(x0.device, x0.dtype)
    sigma_b = sigma.reshape(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
    noisy = (1 - sigma_b) * x0 + sigma_b * noise
    velocity = _velocity_output(model(noisy, sigma * 1000, **condition))
    return torch.nn.functional.mse_loss(velocity.float(), (noise - x0).float())


def _velocity_output(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "sample"):
        return output.sample
    if isinstance(output, (tuple, list)):
        return output[0]
    raise TypeError(f"{_WHERE}: the velocity net returned {type(output).__name__}; expected a tensor or an output with .sample")


# -- generator folders ----------------------------------------------------------------------------------------
@dataclass
class DenoisingProcessor:
    """What `load_processor` returns for a generator folder: the sampler settings and the flow-matching scheduler."""

    settings: SamplerSettings
    scheduler: Any
    model_class: str
    sigmas: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.sigmas = flow_match_sigmas(self.settings.num_steps, scheduler=self.scheduler)

    def save_pretrained(self, folder: str | Path) -> None:
        """Write mmpost_generator.json and scheduler/ (the model itself saves with its own save_pretrained)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.scheduler.save_pretrained(str(folder / SCHEDULER_FOLDER))
        sampler = {**asdict(self.settings), "latent_shape": list(self.settings.latent_shape),
                   "output_range": list(self.settings.output_range)}
        (folder / GENERATOR_FILE).write_text(json.dumps({"model_class": self.model_class, "sampler": sampler}, indent=1))


def save_generator(model: torch.nn.Module, folder: str | Path, *, sampler: dict, shift: float = 1.0) -> Path:
    """Save a diffusers ModelMixin as a generator folder loadable by `DenoisingPolicy` (used by zoo builders)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    folder = Path(folder)
    model_class = f"{type(model).__module__}:{type(model).__qualname__}"
    _generator_class(model_class, folder / GENERATOR_FILE)
    settings = SamplerSettings.from_dict(dict(sampler), str(folder / GENERATOR_FILE))
    model.save_pretrained(str(folder))
    DenoisingProcessor(settings, FlowMatchEulerDiscreteScheduler(shift=shift), model_class).save_pretrained(folder)
    return folder


def _read_generator_file(path: str | Path) -> dict:
    file = Path(path) / GENERATOR_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file}: missing; a denoising-policy model folder needs {GENERATOR_FILE} naming the "
                                "model class and the sampler settings (see mmpost.denoising.save_generator)")
    try:
        values = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{file}: not valid JSON ({error})") from None
    if not isinstance(values, dict) or not isinstance(values.get("model_class"), str) or not isinstance(values.get("sampler"), dict):
        raise ValueError(f"{file}: needs 'model_class' (\"package.module:Class\") and a 'sampler' object")
    return values


def _generator_class(spec: str, where: Path | str) -> type:
    """Resolve "package.module:Class" to a diffusers ModelMixin subclass (nothing else is accepted)."""
    from diffusers import ModelMixin

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{where}: model_class must be 'package.module:Class', got {spec!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"{where}: model_class {spec!r}: cannot import {module_name!r} ({error})") from None
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{where}: model_class {spec!r}: {module_name!r} has no attribute {attribute!r}")
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, ModelMixin)):
        raise ValueError(f"{where}: model_class {spec!r} is not a subclass of diffusers.ModelMixin")
    return obj


# -- the policy kind ------------------------------------------------------------------------------------------
@POLICIES.register("denoising")
class DenoisingPolicy:
    """A flow-matching generator as a policy: K denoising steps per row, each a Gaussian SDE step with a log-prob."""

    vocabulary = None  # it emits no tokens: a row's K units are denoising steps
    # One layout: a chain is re-scored by its own forward per row, so the layout only splits rows into micro-batches,
    # and a prompt's group stays in one (as `micro_batch_rows` splits "shared_prefix").
    logprob_layouts = ("shared_prefix",)
    computes_own_kl = True  # Flow-GRPO's KL between step means (`kl_terms`), not from reference log-probs

    @classmethod
    def load_model(cls, model_config: Any, path: str) -> torch.nn.Module:
        values = _read_generator_file(path)
        model_class = _generator_class(values["model_class"], Path(path) / GENERATOR_FILE)
        dtype = getattr(torch, getattr(model_config, "dtype", "float32") or "float32")
        return model_class.from_pretrained(str(path), torch_dtype=dtype)

    @classmethod
    def load_processor(cls, path: str, trust_remote_code: bool = False) -> DenoisingProcessor:
        from diffusers import FlowMatchEulerDiscreteScheduler

        values = _read_generator_file(path)
        settings = SamplerSettings.from_dict(values["sampler"], str(Path(path) / GENERATOR_FILE))
        scheduler_folder = Path(path) / SCHEDULER_FOLDER
        if not scheduler_folder.is_dir():
            raise FileNotFoundError(f"{scheduler_folder}: missing; a generator folder keeps its "
                                    "FlowMatchEulerDiscreteScheduler there (scheduler.save_pretrained)")
        scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(str(scheduler_folder))
        return DenoisingProcessor(settings, scheduler, values["model_class"])

    def __init__(self, model: torch.nn.Module, processor: DenoisingProcessor, task: Any, modality: Any) -> None:
        if not isinstance(processor, DenoisingProcessor):
            raise TypeError(f"{_WHERE}: DenoisingPolicy needs the processor from DenoisingPolicy.load_processor, "
                            f"got {type(processor).__name__}")
        self.model, self.processor, self.task, self.modality = model, processor, task, modality
        self.settings = processor.settings
        self.sigmas = processor.sigmas  # [K+1], 1 -> 0

    @property
    def num_steps(self) -> int:
        return self.settings.num_steps

    # -- conditioning ---------------------------------------------------------------------------------------
    def encode_prompts(self, samples: Sequence[Sample]) -> list[PromptEncoding]:
        """Each sample's conditioning tensors (from `task.conditioning`, else the modality) with a leading row dim."""
        encodings = []
        for sample in samples:
            if hasattr(self.task, "conditioning"):
                condition = self.task.conditioning(sample)
                if not isinstance(condition, dict) or not all(isinstance(v, torch.Tensor) for v in condition.values()):
                    raise TypeError(f"{_WHERE}: task {getattr(self.task, 'name', self.task)!r}.conditioning must return "
                                    f"dict[str, Tensor], got {type(condition).__name__}")
                media = {name: value.unsqueeze(0) for name, value in condition.items()}
                encodings.append(PromptEncoding(input_ids=torch.zeros(1, dtype=torch.long), media=media,
                                                text=str(sample.get("problem", sample.get("id", "")))))
            else:
                encodings.append(self.modality.encode_prompt(self.processor, self.task.prompt(sample), sample))
        return encodings

    def decode(self, completion_ids: torch.Tensor, mask: torch.Tensor) -> list[str]:
        """A generator's outputs are not recoverable from its dummy step ids (the backend reports `outputs`);
        this gives a readable stand-in per row for logs."""
        return [f"<{int(m.sum())} of {len(m)} denoising steps trained>" for m in mask]

    def encode_target(self, text: str) -> list[int]:
        raise NotImplementedError(f"{_WHERE}: a denoising policy has no token targets; pre-train generators with "
                                  "flow_matching_loss (e.g. the zoo builders) instead of the token SFT loss")

    @staticmethod
    def conditioning(batch: RolloutBatch, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """The conditioning tensors of `rows`, stacked along dim 0: name -> [n, ...]."""
        index = batch.prompt_index[rows].tolist()
        names = batch.prompts[index[0]].media.keys()
        return {name: torch.cat([batch.prompts[i].media[name] for i in index]) for name in names}

    # -- re-scoring -----------------------------------------------------------------------------------------
    def _step_means(self, model: torch.nn.Module, batch: RolloutBatch, rows: torch.Tensor, steps: list[int]
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Re-run the net on stored x_k for `steps`: (log-probs [n, S], means [n, S, ...], σ_t [n, S]), fp32."""
        latents, sigmas = batch.aux["latents"][rows], batch.aux["sigmas"][rows].float()
        parameter = next(model.parameters())
        condition = {k: v.to(parameter.device) for k, v in self.conditioning(batch, rows).items()}
        sigma_max = float(sigmas[0, 1])
        logprobs, means, stds = [], [], []
        for k in steps:
            x = latents[:, k].to(parameter.device)
            velocity = _velocity_output(model(x.to(parameter.dtype), sigmas[:, k].to(parameter.device) * 1000, **condition))
            _, logprob, mean, std_dev_t = sde_step_with_logprob(
                velocity, x, sigmas[:, k].to(x.device), sigmas[:, k + 1].to(x.device), noise_level=self.settings.noise_level,
                sigma_max=sigma_max, prev_sample=latents[:, k + 1].to(parameter.device))
            logprobs.append(logprob)
            means.append(mean)
            stds.append(std_dev_t.reshape(-1))
        return torch.stack(logprobs, 1), torch.stack(means, 1), torch.stack(stds, 1)

    def logprobs(self, model: torch.nn.Module, batch: RolloutBatch, rows: torch.Tensor, *, temperature: float = 1.0,
                 layout: str = "padded", token_budget: int | None = None,
                 full_distribution: bool = False) -> tuple[torch.Tensor, dict]:
        """Per-step log-probs fp32 [n, K] of the stored chain under `model` (Flow-GRPO's re-score).

        Only steps some row trains (`completion_mask`) are computed; the others are 0. `temperature` does not
        apply (the SDE's noise_level is the sampling temperature's counterpart), a chain has one layout
        (`layout`, `token_budget`) and `full_distribution` is token-only; all are accepted for the contract. `extra` holds per-row tensors only (the engine slices it by
        rows): `computed` bool [n, K] (the steps re-run), `means` [n, S, ...] and `std_dev_t` [n, S] of those S steps.
        """
        if "latents" not in batch.aux or "sigmas" not in batch.aux:
            raise KeyError(f"{_WHERE}: RolloutBatch.aux needs 'latents' and 'sigmas' from the sde backend to re-score rows")
        rows = torch.as_tensor(rows, dtype=torch.long)
        mask = batch.completion_mask[rows]
        steps = [k for k in range(mask.shape[1]) if bool(mask[:, k].any())]
        parameter = next(model.parameters())
        result = torch.zeros(len(rows), mask.shape[1], dtype=torch.float32, device=parameter.device)
        computed = torch.zeros(len(rows), mask.shape[1], dtype=torch.bool, device=parameter.device)
        if not steps:
            return result, {"computed": computed}
        computed[:, steps] = True
        logprobs, means, stds = self._step_means(model, batch, rows, steps)
        result = result.index_copy(1, torch.tensor(steps, device=result.device), logprobs)
        return result, {"computed": computed, "means": means, "std_dev_t": stds}

    def kl_terms(self, model: torch.nn.Module, reference: torch.nn.Module | None, batch: RolloutBatch,
                 rows: torch.Tensor, extra: dict) -> torch.Tensor:
        """Flow-GRPO's KL on step means, ‖μ_θ - μ_ref‖² (mean over non-batch dims) / (2σ_t²): [n, K], 0 off the
        computed steps. `reference=None` on a PEFT model disables the adapter for the reference pass."""
        rows = torch.as_tensor(rows, dtype=torch.long)
        computed = extra.get("computed")
        steps = [] if computed is None or computed.shape[0] == 0 else computed[0].nonzero().flatten().tolist()
        parameter = next(model.parameters())
        result = torch.zeros(len(rows), batch.completion_mask.shape[1], dtype=torch.float32, device=parameter.device)
        if not steps:
            return result
        with torch.no_grad():
            if reference is not None:
                _, ref_means, _ = self._step_means(reference, batch, rows, steps)
            elif hasattr(model, "disable_adapter"):
                with model.disable_adapter():
                    _, ref_means, _ = self._step_means(model, batch, rows, steps)
            else:
                raise ValueError(f"{_WHERE}: kl_terms needs a reference model, or a PEFT model whose adapter can be disabled")
        means, stds = extra["means"], extra["std_dev_t"]
        columns = []
        for s in range(len(steps)):
            std = stds[:, s]
            # An ODE step (noise 0) has no density and no KL.
            safe = torch.where(std > 0, std, torch.ones_like(std))
            kl = flow_grpo_kl(means[:, s], ref_means[:, s].to(means.device), safe)
            columns.append(torch.where(std > 0, kl, torch.zeros_like(kl)))
        return result.index_copy(1, torch.tensor(steps, device=result.device), torch.stack(columns, 1))


# -- the rollout backend --------------------------------------------------------------------------------------
@ROLLOUT_BACKENDS.register("sde")
class SDEBackend:
    """Samples n denoising chains per prompt with Flow-GRPO's SDE step, batched over all rows.

    Noise (initial latents, SDE noise, random trained steps) comes from torch's global RNG, which the trainer
    checkpoints, so a resumed run draws what an uninterrupted one would; `seed` gives the backend a private
    generator instead (fixed-noise evaluation).
    """

    def __init__(self, model: torch.nn.Module, *, policy: DenoisingPolicy, seed: int | None = None) -> None:
        if not isinstance(policy, DenoisingPolicy):
            raise TypeError(f"{_WHERE}: the sde backend serves `model.policy: denoising`, got {type(policy).__name__}")
        self.model, self.policy = model, policy
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    def sync_weights(self, model: torch.nn.Module) -> None:
        """The backend samples from the trained module itself."""
        self.model = model

    @torch.no_grad()
    def generate(self, prompts: Sequence[PromptEncoding], samples: Sequence[Sample],
                 params: SamplingParams) -> GenerationResult:
        settings, policy = self.policy.settings, self.policy
        n, steps = params.n, settings.num_steps
        rows = len(prompts) * n
        parameter = next(self.model.parameters())
        condition = {name: torch.cat([p.media[name] for p in prompts]).repeat_interleave(n, dim=0).to(parameter.device)
                     for name in prompts[0].media}
        trained = trained_step_mask(settings.train_steps, steps, generator=self.generator)
        if params.greedy:
            noise_levels = [0.0] * steps
        elif settings.sde_steps == "trained":
            noise_levels = [settings.noise_level if bool(trained[k]) else 0.0 for k in range(steps)]
        else:
            noise_levels = [settings.noise_level] * steps
        sigmas = policy.sigmas
        latent = torch.randn((rows, *settings.latent_shape), generator=self.generator).to(parameter.device)
        chain, logprobs = [latent], []
        was_training = self.model.training
        self.model.eval()
        try:
            for k in range(steps):
                sigma = sigmas[k].expand(rows).to(parameter.device)
                velocity = _velocity_output(self.model(latent.to(parameter.dtype), sigma * 1000, **condition))
                latent, logprob, _, _ = sde_step_with_logprob(
                    velocity, latent, sigma, sigmas[k + 1].expand(rows).to(parameter.device), noise_level=noise_levels[k],
                    sigma_max=float(sigmas[1]), generator=self.generator)
                chain.append(latent)
                logprobs.append(logprob)
        finally:
            self.model.train(was_training)
        low, high = settings.output_range
        outputs = [x.clamp(low, high).cpu() for x in latent]
        step_mask = torch.zeros(steps) if params.greedy else trained.float()
        return GenerationResult(
            completion_ids=[[0] * steps for _ in range(rows)],
            logprobs=torch.stack(logprobs, 1).cpu().tolist(),
            aux={"latents": torch.stack(chain, 1).cpu(), "sigmas": sigmas.expand(rows, steps + 1).clone()},
            outputs=outputs,
            masks=[step_mask.tolist() for _ in range(rows)],
        )


def fixed_noise_scores(policy: DenoisingPolicy, backend: Any, rows: Sequence[Sample], score: Any, *, seed: int = 1234
                       ) -> tuple[float, float]:
    """(sum, count) of `score(outputs, rows)` for deterministic ODE samples of `rows` from start noise seeded by
    `seed`: held-out numbers before and after training then compare the same draws (a task's `evaluate_policy`)."""
    if not rows:
        return 0.0, 0.0
    fixed = type(backend)(backend.model, policy=policy, seed=seed)
    result = fixed.generate(policy.encode_prompts(rows), rows, SamplingParams(n=1, greedy=True))
    values = [v for v in score(result.outputs, list(rows)) if v is not None]
    return float(sum(values)), float(len(values))

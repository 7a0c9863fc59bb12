"""The perf branch's environment switches: parsed and validated in one place.

Accepted spellings follow the branch (e.g. WAN_A2A_FENCE=full); where the branch
silently falls back on an unknown value, the reference refuses it instead.
"""
import os
from dataclasses import dataclass

_OFF = ("", "0", "off", "false", "no")
_ON = ("1", "on", "true", "yes")


class SwitchError(ValueError):
    pass


def _choice(*options):
    """Parser for a switch with fixed values; options are (value, accepted spellings)."""
    def parse(var, raw):
        for value, spellings in options:
            if raw in spellings:
                return value
        choices = ", ".join(s for _, spellings in options for s in spellings if s)
        raise SwitchError(f"{var}={raw!r} is not a valid value; expected one of: {choices}")
    return parse


def _bool(default, on_extra=()):
    return _choice((default, ("",)), (False, _OFF[1:]), (True, _ON + on_extra))


def _positive_int(var, raw):
    raw = raw or "1"
    if not raw.isdigit() or int(raw) < 1:
        raise SwitchError(f"{var}={raw!r} is not a valid value; expected a positive integer")
    return int(raw)


def _nonneg_float(var, raw):
    try:
        value = float(raw or "0")
    except ValueError:
        value = -1.0
    if not value >= 0.0 or value == float("inf"):
        raise SwitchError(f"{var}={raw!r} is not a valid value; expected a finite number >= 0")
    return value


def _rank(var, raw):
    if raw == "":
        return None
    if not raw.isdigit():
        raise SwitchError(f"{var}={raw!r} is not a valid value; expected a rank number")
    return int(raw)


# WAN_REF_STEP_DELAY_MS when unset. A commit that changes this line makes every denoise step slower
# without changing the run's command: how a test plants a regression at one commit (docs/bisect.md).
STEP_DELAY_MS_DEFAULT = 0.0


def _delay_ms(var, raw):
    return _nonneg_float(var, raw) if raw else STEP_DELAY_MS_DEFAULT


# env var -> (field, parser); an unset variable parses as "".
_SPEC = {
    "WAN_A2A_FENCE": ("a2a_fence", _choice((0, _OFF), (1, ("1", "pre_qkv", "pre_qkv_only", "light")),
                                           (2, ("2", "full", "all")))),
    "WAN_A2A_EVENT_GATE": ("a2a_event_gate", _bool(False, ("gate",))),
    "WAN_FSDP_ALLGATHER_WAIT_A2A": ("allgather_wait_a2a", _bool(False, ("wait",))),
    "WAN_FSDP_RESHARD_AFTER_FORWARD": ("reshard_after_forward", _bool(True)),
    "WAN_FSDP_BLOCK_GROUP_SIZE": ("block_group_size", _positive_int),
    "WAN_FSDP_WRAP_MODE": ("wrap_mode", _choice(("block", ("", "block", "block_only")),
                                                ("ffn_only", ("ffn", "ffn_only")))),
    "WAN_FSDP_SHARDING_STRATEGY": ("sharding_strategy", _choice(("FULL_SHARD", ("", "full_shard")),
                                                                ("SHARD_GRAD_OP", ("shard_grad_op",)))),
    "WAN_PACKED_QKV_A2A": ("packed_qkv_a2a", _bool(True)),
    "WAN_SLOW_CARD_DIAG": ("slow_card_diag", _bool(False)),
    "WAN_SLOW_CARD_OP_DIAG": ("slow_card_op_diag", _bool(False)),
    "ALGO": ("algo", _choice((0, ("", "0")), (1, ("1",)))),
    # reference only: this rank raises before the timed generation (tests the failure path)
    "WAN_REF_FAIL_RANK": ("fail_rank", _rank),
    # reference only: add perturb x (unit noise of a fixed seed) to the final latent, so the
    # output changes slightly on purpose (tests the output-equivalence guard); 0 = off
    "WAN_REF_PERTURB": ("perturb", _nonneg_float),
    # reference only: every rank sleeps this many ms in each denoise step (scheduler_step), a slowdown
    # on purpose of a known size (tests the bisect); unset = STEP_DELAY_MS_DEFAULT, 0 = off
    "WAN_REF_STEP_DELAY_MS": ("step_delay_ms", _delay_ms),
}


@dataclass(frozen=True)
class Switches:
    a2a_fence: int = 0  # 0 off, 1 device sync before the q/k/v all-to-all, 2 before every all-to-all
    a2a_event_gate: bool = False
    allgather_wait_a2a: bool = False
    reshard_after_forward: bool = True
    block_group_size: int = 1
    wrap_mode: str = "block"
    sharding_strategy: str = "FULL_SHARD"
    packed_qkv_a2a: bool = True
    slow_card_diag: bool = False
    slow_card_op_diag: bool = False
    algo: int = 0
    fail_rank: int | None = None
    perturb: float = 0.0
    step_delay_ms: float = 0.0

    @classmethod
    def from_env(cls, env=None):
        env = os.environ if env is None else env
        return cls(**{field: parse(var, env.get(var, "").strip().lower())
                      for var, (field, parse) in _SPEC.items()})

    @property
    def fsdp_reshard(self):
        """FSDP reshard_after_forward: SHARD_GRAD_OP keeps gathered params, as FSDP1's strategy does."""
        return self.reshard_after_forward and self.sharding_strategy == "FULL_SHARD"

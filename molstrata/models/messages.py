"""Message passing over half pairs: who sends to whom, and the sums of messages per atom.

A batch of half pairs (each unordered pair p = (i, j) once) carries 2 n_pairs messages: message
p goes j -> i and message n_pairs + p goes i -> j (`message_routes`). A model gathers each
message's sender features (`gather`) and sums the messages each atom receives (`scatter`).

Plain `index_select` / `index_add_` do both on any device. On a CPU their backward or forward
`index_add_` is a scatter-add that writes rows in the order the messages come, which is slow;
`MessageSums` holds the same sums as two sparse CSR matrices (atoms x messages), built once per
batch when first asked for, so that every sum over messages, forward or backward, is one
sparse-dense product that writes each atom's row once. Both paths compute the same sums (up to
the order of the float additions). SchNet on a CPU goes further where it can: its whole
convolution is one compiled kernel over the batch's pairs (kernels.py), which reads the pairs
from `MessageSums` too.
"""

from __future__ import annotations

import functools
import warnings

import torch
from torch.autograd.function import once_differentiable

_BETA = "Sparse CSR tensor support is in beta state"
"""torch's one-time warning on building a CSR tensor: nothing a user can act on."""


class MessageSums:
    """The messages of one batch of half pairs, for the fast CPU paths.

    Holds the batch's half pairs idx_i, idx_j (n_pairs,) over n_atoms atoms, checked once
    here, the dtype of the messages the sums take, and, when known, pair_offsets
    (n_molecules + 1,): the pairs of molecule m are pair_offsets[m] .. pair_offsets[m + 1] - 1
    and join only that molecule's atoms (`DeviceDataset` batches), which lets the compiled
    convolution of kernels.py split the pairs between threads.

    by_receiver, by_sender are the sums as sparse CSR matrices, built on first use (SchNet with
    the compiled kernel never asks for them): by_receiver (n_atoms, 2 n_pairs) has a 1 at
    (receiver of m, m), so by_receiver @ messages sums the messages each atom receives;
    by_sender has a 1 at (sender of m, m), so by_sender @ g sums, per atom, what flows back
    from the messages it sent.
    """

    def __init__(self, idx_i: torch.Tensor, idx_j: torch.Tensor, n_atoms: int,
                 dtype: torch.dtype, pair_offsets: torch.Tensor | None = None) -> None:
        n_pairs = len(idx_i)
        if idx_j.shape != idx_i.shape or idx_i.dim() != 1:
            raise ValueError("idx_i and idx_j must be 1-d and of one length")
        if n_pairs and (int(torch.minimum(idx_i.min(), idx_j.min())) < 0
                        or int(torch.maximum(idx_i.max(), idx_j.max())) >= n_atoms):
            raise ValueError(f"pair indices must lie in [0, {n_atoms})")
        if pair_offsets is not None:
            pair_offsets = pair_offsets.to(torch.int64).contiguous()
            if (pair_offsets.dim() != 1 or len(pair_offsets) == 0 or int(pair_offsets[0]) != 0
                    or int(pair_offsets[-1]) != n_pairs
                    or bool((pair_offsets[1:] < pair_offsets[:-1]).any())):
                raise ValueError("pair_offsets must rise from 0 to the number of pairs")
        self.idx_i = idx_i.to(torch.int64).contiguous()
        self.idx_j = idx_j.to(torch.int64).contiguous()
        self.n_atoms = n_atoms
        self.dtype = dtype
        self.pair_offsets = pair_offsets

    @property
    def n_pairs(self) -> int:
        return len(self.idx_i)

    @property
    def by_receiver(self) -> torch.Tensor:
        return self._matrices[0]

    @property
    def by_sender(self) -> torch.Tensor:
        return self._matrices[1]

    @functools.cached_property
    def _matrices(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(by_receiver, by_sender): the messages sorted by receiver (stable) give the CSR
        rows; the messages an atom sends are the reverses of those it receives:
        m <-> m + n_pairs (mod 2 n_pairs)."""
        n_atoms, n_pairs = self.n_atoms, self.n_pairs
        receivers = torch.cat([self.idx_i, self.idx_j]).to(torch.int32)
        received = torch.sort(receivers, stable=True)[1].to(torch.int32)
        crow = torch.zeros(n_atoms + 1, dtype=torch.int32, device=receivers.device)
        torch.cumsum(torch.bincount(receivers, minlength=n_atoms), 0, dtype=torch.int32,
                     out=crow[1:])
        sent = torch.where(received < n_pairs, received + n_pairs, received - n_pairs)
        ones = torch.ones(2 * n_pairs, dtype=self.dtype, device=crow.device)
        shape = (n_atoms, 2 * n_pairs)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_BETA)
            return (torch.sparse_csr_tensor(crow, received, ones, shape, check_invariants=False),
                    torch.sparse_csr_tensor(crow, sent, ones, shape, check_invariants=False))


def message_routes(
    idx_i: torch.Tensor, idx_j: torch.Tensor, half_pairs: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(senders, receivers) of the messages: j -> i for directed pairs; for half pairs both
    j -> i and i -> j, the reverse messages after the forward ones. Built once per batch and
    shared by every interaction."""
    if not half_pairs:
        return idx_j, idx_i
    return torch.cat([idx_j, idx_i]), torch.cat([idx_i, idx_j])


class _Gather(torch.autograd.Function):
    """h[senders], whose backward sums with by_sender instead of a scatter-add."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, senders: torch.Tensor, by_sender: torch.Tensor):
        ctx.by_sender = by_sender
        return torch.index_select(h, 0, senders)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        flat = grad.reshape(len(grad), -1)
        return (ctx.by_sender @ flat).view(-1, *grad.shape[1:]), None, None


class _Scatter(torch.autograd.Function):
    """by_receiver @ messages, whose backward is a gather."""

    @staticmethod
    def forward(ctx, messages: torch.Tensor, receivers: torch.Tensor,
                by_receiver: torch.Tensor):
        ctx.save_for_backward(receivers)
        flat = messages.reshape(len(messages), -1)
        return (by_receiver @ flat).view(-1, *messages.shape[1:])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (receivers,) = ctx.saved_tensors
        return torch.index_select(grad, 0, receivers), None, None


class _HalfPairMessages(torch.autograd.Function):
    """sum over the messages each atom receives of h[sender] * filter, for half pairs, with
    the batch's MessageSums; the backward writes no (2, n_pairs, F) temporaries."""

    @staticmethod
    def forward(ctx, h, filters, senders, receivers, by_receiver, by_sender):
        n_pairs, width = filters.shape
        gathered = torch.index_select(h, 0, senders).view(2, n_pairs, width)
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            messages = gathered * filters
            ctx.gathered, ctx.by_sender = gathered, by_sender
            ctx.save_for_backward(filters, receivers)
        else:  # nothing to save: multiply in place
            messages = gathered.mul_(filters)
        return by_receiver @ messages.view(2 * n_pairs, width)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        filters, receivers = ctx.saved_tensors
        gathered = ctx.gathered
        n_pairs, width = filters.shape
        flowing = torch.index_select(grad.contiguous(), 0, receivers).view(2, n_pairs, width)
        grad_filters = grad_h = None
        if ctx.needs_input_grad[1]:  # both directions share one filter
            grad_filters = torch.mul(flowing[0], gathered[0]).addcmul_(flowing[1], gathered[1])
        if ctx.needs_input_grad[0]:
            grad_h = ctx.by_sender @ flowing.mul_(filters).view(2 * n_pairs, width)
        return grad_h, grad_filters, None, None, None, None


def pass_messages(
    h: torch.Tensor,
    filters: torch.Tensor,
    senders: torch.Tensor,
    receivers: torch.Tensor,
    half_pairs: bool,
    sums: MessageSums | None,
) -> torch.Tensor:
    """(n_atoms, F): for each atom the sum of h[sender] * filter over the messages it
    receives (continuous-filter convolution).

    h: (n_atoms, F); filters: (n_pairs, F); senders, receivers from `message_routes`:
    (n_pairs,) for directed pairs, (2 n_pairs,) for half pairs (half_pairs=True), where
    messages p and n_pairs + p share pair p's filter. sums: the batch's `MessageSums` (half
    pairs), or None.
    """
    n_pairs, width = filters.shape
    if sums is not None:
        return _HalfPairMessages.apply(h, filters, senders, receivers, sums.by_receiver,
                                       sums.by_sender)
    gathered = gather(h, senders, None)
    if not half_pairs:
        messages = gathered * filters
    else:  # both directions share one filter per unordered pair
        messages = (gathered.view(2, n_pairs, width) * filters).view(-1, width)
    return scatter(messages, receivers, h.shape[0], None)


def gather(h: torch.Tensor, senders: torch.Tensor, sums: MessageSums | None) -> torch.Tensor:
    """(n_messages, ...) rows of h (n_atoms, ...) of each message's sender."""
    if sums is None:
        # index_select, not h[idx]: its backward is an index_add, several times faster on
        # CPUs than the accumulating index_put that plain indexing backpropagates through.
        return torch.index_select(h, 0, senders)
    return _Gather.apply(h, senders, sums.by_sender)


def scatter(messages: torch.Tensor, receivers: torch.Tensor, n_atoms: int,
            sums: MessageSums | None) -> torch.Tensor:
    """(n_atoms, ...) sums of the messages (n_messages, ...) each atom receives."""
    if sums is None:
        shape = (n_atoms, *messages.shape[1:])
        return messages.new_zeros(shape).index_add_(0, receivers, messages)
    return _Scatter.apply(messages, receivers, sums.by_receiver)

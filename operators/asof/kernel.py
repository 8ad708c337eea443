"""The vectorized point-in-time match: for each left row, the right row to take.

Input is already encoded (see :mod:`operators.asof.key_encoding`): int64 key codes
(-1 = no key) and int64 times in one unit. Only the left (spine) side is sorted;
the right side is streamed chunk by chunk and never sorted:

1. :class:`AsofPlan` sorts the valid left rows by ``(key, time)`` (one packed
   int64 ``np.sort``, split by key range when the bits do not fit) and records
   each key's run of left rows.
2. :meth:`AsofPlan.add` folds in one right chunk, block by block: it drops rows
   that cannot match (key absent from the left, NULL time, later than the key's
   latest left time, or older than ``max_age`` before its earliest) and gives
   every other row its *slot*: the first left row of its key whose time is
   ``>=`` its own (compared against the first left times of the run, kept in a
   per-key table; long runs continue with a vectorized binary search). Per slot
   it keeps the latest right time and, among rows with that time, the last row:
   one ``np.maximum.at`` of a packed int64 ``(age_cap - age, row)`` where
   ``age`` is how long before the slot's left time the row is, in the left
   side's time unit (rows off that unit, or too old for the bits, go through an
   exact two-array path instead). Each thread folds into its own arrays.
3. :meth:`AsofPlan.solve` merges the threads' arrays; a left row's match is the
   one of the last non-empty slot at or before it within its key's run (slot
   times increase along a run: a right row in slot ``s`` is later than the left
   time of slot ``s - 1``).

Memory: a few arrays the size of the left side plus per-key tables; the right
side is never held beyond one chunk.
"""

from __future__ import annotations

import threading

import numpy as np

FORCE_ARGSORT = False  # tests flip this to cover the fallback (lexsort) ordering of the left side
FORCE_EXACT = False  # tests flip this to fold every right row through the unpacked (exact) path
_MAX_AGE_BITS = 62  # tests lower this to send old rows through the exact path
_BLOCK = 1 << 16  # right rows per step: scratch buffers stay in cache and are reused
_PROBES = 3  # left times per key kept next to its run start; longer runs binary-search on
_MAX_PART_BITS = 12  # beyond 4096 key-range parts, lexsort is cheaper than the packed sorts
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


def _bits(n: int) -> int:
    return max(int(n).bit_length(), 0)


def match_rows(
    lcodes: np.ndarray,
    ltimes: np.ndarray,
    lvalid: np.ndarray | None,
    rcodes: np.ndarray,
    rtimes: np.ndarray,
    rvalid: np.ndarray | None,
    n_codes: int,
    max_age: int | None = None,
) -> np.ndarray:
    """Index of the matching right row for every left row, -1 for none.

    The match has the same code and the greatest time ``<=`` the left time;
    among equal times the last right row wins. ``max_age`` (in the time unit)
    turns matches older than that into -1. ``lvalid``/``rvalid`` may be None
    (all times valid).

    >>> i = np.array
    >>> match_rows(i([0, 0, 1]), i([5, 1, 9]), i([True] * 3),
    ...            i([0, 0, 0, 1]), i([2, 5, 5, 10]), i([True] * 4), 2).tolist()
    [2, -1, -1]
    """
    plan = AsofPlan(lcodes, ltimes, lvalid, n_codes, max_age, n_right=len(rcodes))
    plan.add(rcodes, rtimes, rvalid, 0)
    return plan.solve()


class AsofPlan:
    """The sorted left side and per-key tables; see the module docstring.

    ``latest[c]`` is key ``c``'s latest left time (the int64 minimum when it has
    none; entry ``n_codes`` is read by code -1). Row ``c`` of ``probe`` is
    ``[run start, t_0, t_1, t_2]`` where ``t_j`` are the first left times of the
    run except its last (else the int64 maximum): a right time's slot is the
    run start plus the number of ``t_j`` below it; longer runs binary-search on.
    """

    def __init__(self, lcodes: np.ndarray, ltimes: np.ndarray, lvalid: np.ndarray | None,
                 n_codes: int, max_age: int | None = None, n_right: int = 1 << 62) -> None:
        self.n_left, self.max_age = len(lcodes), max_age
        lcodes = np.asarray(lcodes, np.int64)
        ok = lcodes >= 0
        if lvalid is not None:
            ok &= lvalid
        lidx = np.flatnonzero(ok)
        del ok
        order = _key_time_order(lcodes[lidx], ltimes[lidx], n_codes)
        self.lrows = lidx[order]
        del lidx, order
        self.lcodes, self.ltimes = lcodes[self.lrows], ltimes[self.lrows]
        counts = np.bincount(self.lcodes, minlength=n_codes)
        start = np.zeros(n_codes + 1, np.int64)
        np.cumsum(counts, out=start[1:])
        self.run_start = start[:-1]
        present = np.flatnonzero(counts)
        self.latest = np.full(n_codes + 1, _I64_MIN, np.int64)
        self.latest[present] = self.ltimes[start[present + 1] - 1]
        probe = np.full((n_codes + 1, _PROBES + 1), _I64_MAX, np.int64)
        probe[:, 0] = 0
        probe[:-1, 0] = start[:-1]
        for j in range(_PROBES):
            has = present[counts[present] > j + 1]
            probe[has, 1 + j] = self.ltimes[start[has] + j]
        self.probe = probe
        # Runs longer than the probes: their last position, for the binary search.
        self.run_end = None
        if len(present) and counts.max() > _PROBES + 1:
            self.run_end = np.full(n_codes + 1, -1, np.int64)
            longer = present[counts[present] > _PROBES + 1]
            self.run_end[longer] = start[longer + 1] - 1
        self.oldest = None
        if max_age is not None:
            earliest = np.full(n_codes + 1, _I64_MAX, np.int64)
            earliest[present] = self.ltimes[start[present]]
            self.oldest = np.maximum(earliest, _I64_MIN + max_age) - max_age  # saturating
        # Packing (age before the slot's left time, in `step` units; row) into one int64.
        self.row_bits = _bits(max(n_right - 1, 1))
        self.age_cap = (1 << min(63 - self.row_bits, _MAX_AGE_BITS)) - 1 if self.row_bits < 62 else 0
        self.step = _unit_of(self.ltimes) if len(self.ltimes) else 1
        self._lock = threading.Lock()
        self._local = threading.local()
        self._states: list[_State] = []
        self.matched_times: np.ndarray | None = None

    def add(self, rcodes: np.ndarray, rtimes: np.ndarray, rvalid: np.ndarray | None,
            start: int) -> None:
        """Fold one right chunk (rows ``start, start + 1, ...`` of the right input) in.

        Thread-safe: each thread folds into its own state; :meth:`solve` merges.
        """
        state = getattr(self._local, "state", None)
        if state is None:
            state = self._local.state = _State(len(self.lrows))
            with self._lock:
                self._states.append(state)
        for a in range(0, len(rcodes), _BLOCK):
            b = min(a + _BLOCK, len(rcodes))
            self._fold(state, rcodes[a:b], rtimes[a:b],
                       rvalid[a:b] if rvalid is not None else None, start + a)

    def _fold(self, st: _State, codes, times, valid, first_row: int) -> None:
        n = len(codes)
        keep, flag = st.keep[:n], st.flag[:n]
        np.greater_equal(np.take(self.latest, codes, out=st.i64[:n]), times, out=keep)
        np.greater_equal(codes, 0, out=flag)
        keep &= flag
        if valid is not None:
            keep &= valid
        if self.oldest is not None:
            np.less_equal(np.take(self.oldest, codes, out=st.i64[:n]), times, out=flag)
            keep &= flag
        sel = np.flatnonzero(keep)
        k = len(sel)
        if not k:
            return
        c = codes[sel]
        t = np.take(times, sel, out=st.times[:k])
        g = np.take(self.probe, c, axis=0, out=st.probe[:k])
        slot, below = st.slot[:k], st.flag[:k]
        slot[:] = g[:, 0]
        for j in range(1, _PROBES + 1):
            slot += np.less(g[:, j], t, out=below)
        if self.run_end is not None:
            deep = np.flatnonzero(slot - g[:, 0] == _PROBES)
            if len(deep):
                end = self.run_end[c[deep]]
                deep, end = deep[end >= 0], end[end >= 0]
                slot[deep] = _search_runs(self.ltimes, slot[deep], end, t[deep])
        rows = sel
        rows += first_row
        if self.age_cap and not FORCE_EXACT:
            # Age of each row before its slot's left time; in `step` units when all are.
            age = np.subtract(np.take(self.ltimes, slot, out=st.i64[:k]), t, out=st.i64[:k])
            if self.step > 1:
                if (age % self.step).any():
                    return st.exact(slot, t, rows)
                age //= self.step
            old = np.greater_equal(age, self.age_cap, out=below)
            old |= age < 0  # overflowed: very old
            if old.any():  # older than the bits allow: kept exactly, apart
                far = np.flatnonzero(old)
                st.exact(slot[far], t[far], rows[far])
                age[far] = self.age_cap
                rows[far] = -1  # loses to any real row at the same age
            packed = np.subtract(self.age_cap, age, out=age)
            packed <<= self.row_bits
            packed |= rows
            np.maximum.at(st.best, slot, packed)
        else:
            st.exact(slot, t, rows)

    def solve(self, want_times: bool = False) -> np.ndarray:
        """Index of the matching right row for every left row (-1 for none).

        With ``want_times``, ``self.matched_times`` holds the matched right times
        (0 where there is no match), so the time column need not be read again.
        """
        out = np.full(self.n_left, -1, np.int64)
        m = len(self.lrows)
        with self._lock:
            states, self._states = self._states, []
        self._local = threading.local()
        if not m or not states:
            return out
        best_t = best_r = None
        for st in states:
            t, r = st.result(self.ltimes, self.step, self.row_bits, self.age_cap)
            if best_t is None:
                best_t, best_r = t, r
                continue
            np.maximum(best_r, r, out=best_r, where=t == best_t)
            np.copyto(best_r, r, where=t > best_t)
            np.maximum(best_t, t, out=best_t)
        del states
        # Carry the last non-empty slot forward within each key's run.
        pos = np.where(best_r >= 0, np.arange(m), -1)
        np.maximum.accumulate(pos, out=pos)
        ok = pos >= self.run_start[self.lcodes]
        if self.max_age is not None:
            age = self.ltimes - best_t[np.maximum(pos, 0)]
            ok &= (age <= self.max_age) & (age >= 0)  # negative: overflowed, too old
        hit = np.flatnonzero(ok)
        out[self.lrows[hit]] = best_r[pos[hit]]
        if want_times:
            self.matched_times = np.zeros(self.n_left, np.int64)
            self.matched_times[self.lrows[hit]] = best_t[pos[hit]]
        return out


class _State:
    """One thread's running result per slot, and its scratch buffers.

    ``best`` holds packed ``(age_cap - age, row)`` values (-1: none); rows that
    cannot be packed go to ``best_t``/``best_r`` (the latest time, and the last
    row among rows with that time), allocated on first use.
    """

    def __init__(self, m: int) -> None:
        self.m = m
        self.best = np.full(m, -1, np.int64)
        self.best_t: np.ndarray | None = None
        self.best_r: np.ndarray | None = None
        self.i64 = np.empty(_BLOCK, np.int64)
        self.times = np.empty(_BLOCK, np.int64)
        self.slot = np.empty(_BLOCK, np.int64)
        self.probe = np.empty((_BLOCK, _PROBES + 1), np.int64)
        self.keep = np.empty(_BLOCK, bool)
        self.flag = np.empty(_BLOCK, bool)

    def exact(self, slot: np.ndarray, t: np.ndarray, rows: np.ndarray) -> None:
        if self.best_t is None:
            self.best_t = np.full(self.m, _I64_MIN, np.int64)
            self.best_r = np.full(self.m, -1, np.int64)
        before = self.best_t[slot]
        np.maximum.at(self.best_t, slot, t)
        after = self.best_t[slot]
        raised = after > before
        if raised.any():
            self.best_r[slot[raised]] = -1
        win = np.flatnonzero(t == after)
        np.maximum.at(self.best_r, slot[win], rows[win])

    def result(self, ltimes: np.ndarray, step: int, row_bits: int, age_cap: int):
        """(latest time, row) per slot, the packed and the exact parts combined."""
        has = self.best >= 0
        t = np.full(self.m, _I64_MIN, np.int64)
        r = np.full(self.m, -1, np.int64)
        age = age_cap - (self.best[has] >> row_bits)
        t[has] = ltimes[has] - age * step
        r[has] = self.best[has] & ((1 << row_bits) - 1)
        if self.best_t is not None:
            np.maximum(r, self.best_r, out=r, where=self.best_t == t)
            np.copyto(r, self.best_r, where=self.best_t > t)
            np.maximum(t, self.best_t, out=t)
        return t, r


def _search_runs(lt: np.ndarray, lo: np.ndarray, hi: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Per row, the first position in ``lo..hi`` with ``lt >= t`` (``lt[hi] >= t`` holds)."""
    lo, hi = lo.copy(), hi.copy()
    act = np.flatnonzero(lo < hi)
    while len(act):
        low, high = lo[act], hi[act]
        mid = (low + high) >> 1
        later = lt[mid] < t[act]
        low = np.where(later, mid + 1, low)
        high = np.where(later, high, mid)
        lo[act], hi[act] = low, high
        act = act[low < high]
    return lo


def _key_time_order(codes: np.ndarray, times: np.ndarray, n_codes: int) -> np.ndarray:
    """A permutation sorting rows by ``(code, time)``.

    Packs ``(code, time, row)`` into one int64 and sorts values (no argsort);
    times are shifted and divided by their coarsest unit first, or ranked when
    that is not enough. When the bits still do not fit, rows are split by the
    high bits of the code (a radix argsort) and each part is packed and sorted.
    """
    n = len(codes)
    if n <= 1 or FORCE_ARGSORT:
        return np.lexsort((times, codes))
    tq, span = _compress(times)
    kb, rb = _bits(n_codes - 1), _bits(n - 1)
    tb = _bits(span - 1)
    p = max(0, kb + tb + rb - 63)
    if p > min(kb, _MAX_PART_BITS) and span > n:
        _, tq = np.unique(times, return_inverse=True)  # ranks: at most n distinct times
        tb = _bits(int(tq.max()))
        p = max(0, kb + tb + rb - 63)
    if p > min(kb, _MAX_PART_BITS):
        return np.lexsort((times, codes))
    if not p:
        return _packed_order(codes, tq, tb, rb)
    shift = kb - p
    part = (codes >> shift).astype(np.uint16)
    order = np.argsort(part, kind="stable")  # radix sort
    bounds = np.searchsorted(part[order], np.arange((1 << p) + 1))
    low = (1 << shift) - 1
    for j in np.flatnonzero(np.diff(bounds) > 1):
        a, b = bounds[j], bounds[j + 1]
        sub = order[a:b]
        order[a:b] = sub[_packed_order(codes[sub] & low, tq[sub], tb, rb)]
    return order


def _packed_order(codes, tq, tb: int, rb: int) -> np.ndarray:
    packed = (codes << (tb + rb)) | (tq << rb)
    packed |= np.arange(len(codes), dtype=np.int64)
    packed.sort()
    return packed & ((1 << rb) - 1)


def _compress(t: np.ndarray) -> tuple[np.ndarray, int]:
    """Small non-negative ints with the order and equalities of ``t``, and their span."""
    tmin, tmax = int(t.min()), int(t.max())
    if tmax - tmin >= (1 << 62):
        _, inv = np.unique(t, return_inverse=True)
        return inv.astype(np.int64), int(inv.max()) + 1
    off = t - tmin
    step = _step(off, tmax - tmin)
    if step > 1:
        off //= step
    return off, (tmax - tmin) // step + 1


def _unit_of(t: np.ndarray) -> int:
    """The coarsest of day/second/ms/us/1000 units dividing every time (1 if none)."""
    return _step(t, _I64_MAX) if len(t) else 1


def _step(off: np.ndarray, top: int) -> int:
    """The coarsest of day/second/ms/us/1000 units dividing every offset."""
    sample = off[:: max(1, len(off) // 4096)]  # cheap rejection before a full pass
    for step in (86_400_000_000_000, 86_400_000_000, 1_000_000_000, 1_000_000, 1_000):
        if top >= step and not (sample % step).any() and not (off % step).any():
            return step
    return 1

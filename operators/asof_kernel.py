"""The vectorized point-in-time match: for each left row, the right row to take.

Input is already encoded (see :mod:`operators.key_encoding`): int64 key codes
(-1 = no key) and int64 times in one unit. The kernel sorts the right side by
one packed int64 ``(key, time, row)`` value, so ``np.sort`` (SIMD, no argsort)
gives a stable order; left rows are looked up with ``np.searchsorted`` on sorted
queries. When ``(key, time, row)`` does not fit in 63 bits, rows are first
range-partitioned on the high bits of the key (a stable radix argsort), which
frees those bits; if that is not enough it falls back to a stable argsort.
"""

from __future__ import annotations

import numpy as np

FORCE_ARGSORT = False  # tests flip this to cover the fallback path


def _bits(n: int) -> int:
    return max(int(n).bit_length(), 0)


def match_rows(
    lcodes: np.ndarray,
    ltimes: np.ndarray,
    lvalid: np.ndarray,
    rcodes: np.ndarray,
    rtimes: np.ndarray,
    rvalid: np.ndarray,
    n_codes: int,
    max_age: int | None = None,
) -> np.ndarray:
    """Index of the matching right row for every left row, -1 for none.

    The match has the same code and the greatest time ``<=`` the left time;
    among equal times the last right row wins. ``max_age`` (in the time unit)
    turns matches older than that into -1.

    >>> i = np.array
    >>> match_rows(i([0, 0, 1]), i([5, 1, 9]), i([True] * 3),
    ...            i([0, 0, 0, 1]), i([2, 5, 5, 10]), i([True] * 4), 2).tolist()
    [2, -1, -1]
    """
    out = np.full(len(lcodes), -1, np.int64)
    lok = (lcodes >= 0) & lvalid
    if not lok.any() or not len(rcodes):
        return out
    lmin, lmax = int(ltimes[lok].min()), int(ltimes[lok].max())
    rmask = (rcodes >= 0) & (rtimes <= lmax)
    if not rvalid.all():
        rmask &= rvalid
    if max_age is not None:
        rmask &= rtimes >= max(lmin - max_age, -(1 << 63))
    if rmask.all():  # common case: skip two full-size gathers
        rsel, rc, rt = np.arange(len(rcodes)), rcodes, rtimes
    else:
        rsel = np.flatnonzero(rmask)
        if not len(rsel):
            return out
        rc, rt = rcodes[rsel], rtimes[rsel]
    del rmask
    lidx = np.flatnonzero(lok)
    lc, lt = lcodes[lidx], ltimes[lidx]
    rq, lq, span = _time_ranks(rt, lt, lmin, lmax)
    found = lq >= 0
    lidx, lc, lq = lidx[found], lc[found], np.minimum(lq[found], span - 1)
    hit_l, hit_r = _search(lc, lq, rc, rq, n_codes, span)
    out[lidx[hit_l]] = rsel[hit_r]
    if max_age is not None:
        m = np.flatnonzero(out >= 0)
        out[m[(ltimes[m] - rtimes[out[m]]) > max_age]] = -1
    return out


def _time_ranks(rt: np.ndarray, lt: np.ndarray, lmin: int, lmax: int):
    """Map times to small non-negative ints that keep ``right <= left``.

    Shifts by the right minimum and divides by the coarsest common unit
    (day, second, ms, us) of the right times; floor division keeps ``<=``
    for the left side. Falls back to ranks over the distinct right times.
    """
    tmin = int(rt.min())
    if lmax - tmin < (1 << 62) and lmin - tmin > -(1 << 62):
        off = rt - tmin
        step = _step(off)
        rq = off // step if step > 1 else off
        lq = (lt - tmin) // step
        span = int(rq.max()) + 1
        if span < (1 << 40):
            return rq, lq, span
    distinct = np.unique(rt)
    rq = np.searchsorted(distinct, rt)
    lq = np.searchsorted(distinct, lt, side="right") - 1
    return rq, lq, len(distinct)


def _step(off: np.ndarray) -> int:
    sample = off[:: max(1, len(off) // 4096)]  # cheap rejection before a full pass
    top = int(off.max())
    for step in (86_400_000_000_000, 86_400_000_000, 1_000_000_000, 1_000_000, 1_000):
        if top >= step and not (sample % step).any() and not (off % step).any():
            return step
    return 1


def _search(lc, lq, rc, rq, n_codes: int, span: int):
    """Return (positions into the left arrays, positions into the right arrays) of hits."""
    kb, tb, m = _bits(n_codes - 1), _bits(span - 1), len(rc)
    if kb + tb > 62 and not FORCE_ARGSORT:
        return _search_argsort(lc, lq, rc, rq, kb, tb)
    p = max(0, kb + tb + _bits(m) - 63)
    while not FORCE_ARGSORT and p <= min(kb, 16):
        shift = kb - p
        counts = np.bincount(rc >> shift, minlength=1 << p) if p else np.array([m])
        rb = _bits(int(counts.max()) - 1)
        if shift + tb + rb <= 63:
            return _search_packed(lc, lq, rc, rq, shift, tb, rb, p, counts)
        p += 1
    return _search_argsort(lc, lq, rc, rq, kb, tb)


def _search_packed(lc, lq, rc, rq, shift, tb, rb, p, counts):
    """Sort packed ``(key low bits, time, row-in-part)`` values per key-range part."""
    starts = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=starts[1:])
    low = (1 << shift) - 1
    packed = ((rc & low) << (tb + rb)) | (rq << rb)
    order = None
    if p:
        parts = (rc >> shift).astype(np.uint8 if p <= 8 else np.uint16)
        order = np.argsort(parts, kind="stable")  # radix sort: O(n), keeps input order
        del parts
        packed = packed[order]
    del rc, rq
    # Left queries ask for the last row of their (key, time) run: row bits all ones.
    lkey = (lc << tb) | lq
    lorder = np.argsort(lkey)
    lkey = lkey[lorder]
    query = ((lkey >> tb & low) << (tb + rb)) | ((lkey & ((1 << tb) - 1)) << rb) | ((1 << rb) - 1)
    lbounds = np.searchsorted(lkey >> (tb + shift), np.arange(len(counts) + 1))
    hit_l, hit_r = [], []
    for j in np.flatnonzero((counts > 0) & (lbounds[1:] > lbounds[:-1])):
        a, b = starts[j], starts[j + 1]
        run = packed[a:b]
        # Row-in-part added here, on cache-sized slices; stable partition keeps input order.
        run |= np.arange(b - a, dtype=np.int64)
        run.sort()
        qa, qb = lbounds[j], lbounds[j + 1]
        q = query[qa:qb]
        pos = np.searchsorted(run, q, side="right") - 1
        val = run[np.maximum(pos, 0)]
        ok = (pos >= 0) & ((val >> (tb + rb)) == (q >> (tb + rb)))
        hit_l.append(lorder[qa:qb][ok])
        hit_r.append(a + (val[ok] & ((1 << rb) - 1)))
    if not hit_l:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    hit_r = np.concatenate(hit_r)
    return np.concatenate(hit_l), (order[hit_r] if order is not None else hit_r)


def _search_argsort(lc, lq, rc, rq, kb, tb):
    """Fallback: stable argsort of ``(key, time)``; ranks keep ``kb + tb`` small enough."""
    if kb + tb > 62:
        distinct = np.unique(rq)
        rq = np.searchsorted(distinct, rq)
        lq = np.searchsorted(distinct, lq, side="right") - 1
        keep = lq >= 0
        lpos = np.flatnonzero(keep)
        lc, lq, tb = lc[keep], lq[keep], _bits(len(distinct) - 1)
    else:
        lpos = np.arange(len(lc))
    comp = (rc << tb) | rq
    perm = np.argsort(comp, kind="stable")
    comp = comp[perm]
    query = (lc << tb) | lq
    qorder = np.argsort(query)
    q = query[qorder]
    pos = np.searchsorted(comp, q, side="right") - 1
    ok = (pos >= 0) & ((comp[np.maximum(pos, 0)] >> tb) == (q >> tb))
    return lpos[qorder[ok]], perm[pos[ok]]

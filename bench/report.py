#!/usr/bin/env python3
"""Collects the figures of one `make bench` run, prints them next to SPEC §10's targets and
writes bench-results.json. Inputs (from bench/run.sh, all optional): <work>/criterion
(CRITERION_HOME), criterion-meta.json, local.json, x86.json, zips.json."""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

MIB = 1024 * 1024

# SPEC §10 (and §4/§7 for equal time and call budgets).
TARGETS = {
    "warm_cc_ms.ES256": 0.04,
    "warm_cc_ms.RS256": 0.30,
    "cold_start_cpu_ms": 25.0,
    "cold_start_rss_mib": 20.0,
    "zip_mib": 4.0,
    "equal_time_ratio": 1.10,
}
# Password attempts are counted before they are verified (one UpdateItem), and a success clears
# the count (a second one): SPEC §7's budget plus that write, so a burst cannot outrun the lock.
SPEC_CALLS = {
    "client_credentials": {"GetItem": 1},
    "password (refresh issued)": {"BatchGetItem": 1, "UpdateItem": 2, "PutItem": 1},
    "refresh_token": {"BatchGetItem": 1, "UpdateItem": 1},
    "password, wrong password": {"BatchGetItem": 1, "UpdateItem": 1},
    "password, unknown user (first failure of its window)": {"BatchGetItem": 1, "UpdateItem": 1},
    "password, wrong password again (same window)": {"BatchGetItem": 1, "UpdateItem": 1},
    "password after a failure (counter reset)": {"BatchGetItem": 1, "PutItem": 1, "UpdateItem": 2},
}


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def criterion_results(root):
    """{"group/bench": {"median_ns", "mean_ns", "ci_low_ns", "ci_high_ns"}}"""
    out = {}
    if not os.path.isdir(root):
        return out
    for group in sorted(os.listdir(root)):
        gdir = os.path.join(root, group)
        if not os.path.isdir(gdir):
            continue
        for bench in sorted(os.listdir(gdir)):
            est = load(os.path.join(gdir, bench, "new", "estimates.json"))
            if not est:
                continue
            med = est["median"]
            out[f"{group}/{bench}"] = {
                "median_ns": med["point_estimate"],
                "median_ci_ns": [
                    med["confidence_interval"]["lower_bound"],
                    med["confidence_interval"]["upper_bound"],
                ],
                "mean_ns": est["mean"]["point_estimate"],
            }
    return out


# The client-authentication failures compared for equal time (shared/benches/token.rs).
CLIENT_CASES = ("unknown_client", "wrong_secret", "disabled_client")


def verdict(value, limit):
    if value is None or limit is None:
        return ""
    return "MET" if value <= limit else "NOT MET"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()

    crit = criterion_results(os.path.join(a.work, "criterion"))
    meta = load(os.path.join(a.work, "criterion-meta.json")) or {}
    local = load(os.path.join(a.work, "local.json")) or {}
    x86 = load(os.path.join(a.work, "x86.json")) or {}
    zips = load(os.path.join(a.work, "zips.json"))

    rows = []  # (section, item, value, target, verdict)

    def row(section, item, value, target="", ok=""):
        rows.append((section, item, value, target, ok))

    def ms(key):
        r = crit.get(key)
        return r["median_ns"] / 1e6 if r else None

    summary = {"targets": {}}

    # --- in-process ---------------------------------------------------------------------
    clock = meta.get("clock", "?")
    if crit:
        sec = f"in-process, criterion median ({clock} time)"
        for alg in ("ES256", "RS256", "EdDSA"):
            h, s = ms(f"token_cc/{alg}"), ms(f"sign/{alg}")
            if h is None:
                continue
            limit = TARGETS.get(f"warm_cc_ms.{alg}")
            v = verdict(h, limit)
            if limit:
                summary["targets"][f"warm client_credentials {alg} <= {limit} ms"] = v
            ratio = f", handler/sign {h / s:.2f}x" if s else ""
            row(sec, f"client_credentials token {alg}", f"{h:.4f} ms (sign alone {s:.4f} ms{ratio})",
                f"<= {limit} ms" if limit else "", v)
        for alg in ("ES256", "RS256", "EdDSA"):
            v = ms(f"introspect/{alg}")
            if v is not None:
                row(sec, f"introspection (valid {alg} token)", f"{v:.4f} ms")
        # Browser sign-in (SPEC §12). §10 sets no in-process target for these; its "other
        # routes <= 0.15 ms beyond their own crypto" is a whole-process figure through the
        # Runtime API, so the share beyond the signatures is shown for reference only.
        lp = ms("authorize/login_page")
        if lp is not None:
            row(sec, "login page (GET /oauth/v2/authorize, no session)",
                f"{lp:.4f} ms (request checks, transaction written, page rendered; no crypto but random ids)")
        ce, s_es, s_rs = ms("authorize/code_exchange"), ms("sign/ES256"), ms("sign/RS256")
        if ce is not None:
            beyond = ""
            if s_es is not None and s_rs is not None:
                beyond = (f"; signatures alone {s_es + s_rs:.4f} ms (ES256 {s_es:.4f} + RS256 {s_rs:.4f}),"
                          f" beyond them {ce - s_es - s_rs:.4f} ms")
            row(sec, "code exchange (authorization_code + PKCE S256; ES256 access + RS256 id_token, refresh)",
                f"{ce:.4f} ms{beyond}")
        kl = ms("keyset_load/init_6_keys")
        if kl is not None:
            row(sec, "key set load (6 keys: active+next x 3 algs)", f"{kl:.3f} ms (cold-start share)")
        first = meta.get("first_calls_in_process") or {}
        if first:
            row(sec, "first vs second call in a fresh process: random_bytes",
                f"{first['first_random_bytes_cpu_ms']:.2f} ms vs {first['second_random_bytes_cpu_ms']:.4f} ms (aws-lc DRBG seeding)")
            row(sec, "first vs second call in a fresh process: key set load",
                f"{first['first_keyset_load_cpu_ms']:.2f} ms vs {first['second_keyset_load_cpu_ms']:.2f} ms")
        pw = ms("token_password/ES256")
        if pw is not None:
            row(sec, f"password grant (argon2id {meta.get('argon2_phc_params', '?')})", f"{pw:.2f} ms")
        lpost = ms("authorize/login_post")
        if lpost is not None:
            extra = f", {lpost - pw:+.2f} ms vs the password grant" if pw is not None else ""
            row(sec, "login form POST (argon2id, session, code, 303)", f"{lpost:.2f} ms{extra}")
        # Equal time: judged on the interleaved medians (every case measured round-robin under
        # the same conditions); criterion's one-after-another groups are shown for reference.
        eq = meta.get("equal_time") or {}

        def judged(key, label, names, unit):
            fig = eq.get(key)
            if not fig:
                return
            scale = 1e6 if unit == "ms" else 1e3
            vals = " / ".join(f"{fig['median_ns'][n] / scale:.3f}" for n in names)
            v = verdict(fig["ratio"], TARGETS["equal_time_ratio"])
            summary["targets"][f"equal time: {label} within 10%"] = v
            row(sec, f"equal time: {label} (interleaved medians, {fig['rounds']} rounds)",
                f"{vals} {unit}, max/min {fig['ratio']:.3f}", "ratio <= 1.10", v)

        judged("password_handler", "unknown user / wrong password, whole handler",
               ("unknown_user", "wrong_password"), "ms")
        judged("client_auth", "unknown client / wrong secret / disabled, client authentication",
               CLIENT_CASES, "µs")
        fig, lookup = eq.get("client_handler"), eq.get("client_lookup")
        if fig and lookup:
            vals = " / ".join(f"{fig['median_ns'][n] / 1e3:.2f}" for n in CLIENT_CASES)
            found, missing = lookup["median_ns"]["found"], lookup["median_ns"]["missing"]
            row(sec, "same three, whole handler on the in-memory store (interleaved)",
                f"{vals} µs, max/min {fig['ratio']:.3f}; of the gap, {(found - missing):.0f} ns is the "
                f"store copying out a found record ({found:.0f} vs {missing:.0f} ns); reported only: "
                "client ids are not secret (RFC 6749 §2.2)")
        u, w = ms("equal_time_password/unknown_user"), ms("equal_time_password/wrong_password")
        if u and w:
            row(sec, "criterion, one case after the other: unknown user / wrong password",
                f"{u:.2f} / {w:.2f} ms, ratio {max(u, w) / min(u, w):.3f}")
        vals = [ms(f"equal_time_client/{n}") for n in CLIENT_CASES]
        if all(vals):
            row(sec, "criterion, one case after the other: unknown client / wrong secret / disabled",
                " / ".join(f"{x * 1e3:.2f}" for x in vals) + f" µs, max/min {max(vals) / min(vals):.3f}")

    # --- cold start ----------------------------------------------------------------------
    cold = local.get("cold_start")
    if cold:
        sec = f"cold start, x86_64 release, ACCESS_TOKEN_ALG={local.get('alg')} (median of {len(cold['client_credentials']['runs'])})"
        # Judged: the token function's first token, and the authorize function's first
        # response (the login page), against the same SPEC §10 targets; the password path needs
        # argon2's 19 MiB and is reported only.
        judged_paths = {
            "client_credentials": ("cold start function CPU <= 25 ms",
                                   "peak RSS (client_credentials) <= 20 MiB"),
            "authorize_login_page": ("authorize cold start (login page) function CPU <= 25 ms",
                                     "peak RSS (authorize login page) <= 20 MiB"),
        }
        for path, m in ((k, v["median"]) for k, v in cold.items()):
            cpu_v = rss_v = ""
            if path in judged_paths:
                cpu_v = verdict(m["cpu_ms"], TARGETS["cold_start_cpu_ms"])
                rss_v = verdict(m["vm_hwm_mib"], TARGETS["cold_start_rss_mib"])
                summary["targets"][judged_paths[path][0]] = cpu_v
                summary["targets"][judged_paths[path][1]] = rss_v
            row(sec, f"{path}: function CPU to first response",
                f"{m['cpu_ms']:.1f} ms (init {m.get('init_cpu_ms', 0):.1f} + handler {m['cpu_ms'] - m.get('init_cpu_ms', 0):.1f}; utime+stime {m['cpu_stat_ms']:.0f} ms)",
                "<= 25 ms" if cpu_v else "", cpu_v)
            row(sec, f"{path}: wall, process start to response",
                f"{m['wall_ms']:.1f} ms (init {m['init_wall_ms']:.1f}, invoke {m['invoke_wall_ms']:.1f}; off-CPU {m['off_cpu_ms']:.1f}, moto CPU {m['moto_cpu_ms']:.1f})")
            row(sec, f"{path}: peak RSS (VmHWM)", f"{m['vm_hwm_mib']:.1f} MiB",
                "<= 20 MiB" if rss_v else "", rss_v)

    # --- calls ---------------------------------------------------------------------------
    calls = local.get("calls")
    if calls:
        sec = "AWS calls per request (counting proxy -> moto)"
        summary["calls_vs_spec"] = {}
        for name, counts in calls.items():
            spec = SPEC_CALLS.get(name)
            got = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "none"
            ok = "" if spec is None else ("= SPEC §7" if counts == spec else "differs from SPEC §7")
            want = "" if spec is None else ", ".join(f"{v} {k}" for k, v in sorted(spec.items()))
            if spec is not None:
                summary["calls_vs_spec"][name] = ok
            row(sec, name, got, want, ok)

    # --- warm, whole process --------------------------------------------------------------
    wm = local.get("warm")
    if wm:
        sec = ("warm, whole function process per request: CPU read at /next (event fetch, handler, "
               "storage calls, response), 1 instance, sequential, storage connection kept alive")
        for name, r in wm["cases"].items():
            if "rounds" in r:  # the interleaved sets: direct, SDK, the floor, oidc-provider
                value = f"{r['cpu_ms']:.3f} ms CPU (median of {r['rounds']} alternating batches, n={r['n']})"
                if "direct_over_sdk" in r:
                    value += f"; direct/SDK {r['direct_over_sdk']:.2f}"
                if "compared_over_this_build" in r:
                    value += f"; over this build {r['compared_over_this_build']:.2f}"
                if "over_oidc_provider" in r:
                    value += f"; over oidc-provider {r['over_oidc_provider']:.2f}"
                target = ok = ""
                if "above_floor_ms" in r:
                    value += f"; above the floor {r['above_floor_ms']:.3f} ms"
                    alg = next((a for a in ("RS256", "ES256", "EdDSA") if f"client_credentials {a}," in name), None)
                    sig = ms(f"sign/{alg}") if alg else 0.0
                    # SPEC §10 (as restated, issue #15): above the same run's floor, at most the
                    # signature + 0.10 ms (client_credentials), 0.15 ms (routes without crypto).
                    limit = (sig + 0.10 if sig is not None else None) if alg else 0.15
                    judged = alg is None or name.endswith(", GetItem direct (interleaved)")
                    if limit is not None and judged:
                        target, ok = f"above floor <= {limit:.3f} ms", verdict(r["above_floor_ms"], limit)
                        summary["targets"][f"warm whole-process above the floor: {name.split(',')[0]} <= {limit:.3f} ms"] = ok
                row(sec, name, value, target, ok)
                continue
            if "storage_calls_per_request" in r:
                calls = ", ".join(f"{v:g} {k}" for k, v in sorted(r["storage_calls_per_request"].items())) or "no storage call"
            else:
                calls = "storage calls not counted (moto direct)"
            value = (f"{r['cpu_ms']:.3f} ms CPU (utime+stime {r['cpu_stat_ms']:.2f}), wall {r['wall_ms']:.2f} ms, "
                     f"{calls}, RSS {r['rss_mib']:.1f} MiB, n={r['n']}")
            target = ok = ""
            alg = name.split()[-1] if name.startswith("client_credentials ") else None
            if alg in ("ES256", "RS256", "EdDSA"):
                h, sig = ms(f"token_cc/{alg}"), ms(f"sign/{alg}")
                if h is not None and sig is not None:
                    value += f"; beyond the in-process handler {r['cpu_ms'] - h:.3f} ms, beyond the signature {r['cpu_ms'] - sig:.3f} ms"
            row(sec, name, value, target, ok)

    # --- memory sizes ----------------------------------------------------------------------
    mem = local.get("memory_sizes")
    if mem:
        sec = (f"client_credentials at each Lambda memory size: the token process alone under a cgroup "
               f"CPU quota of MB/1769 of a CPU per {mem['period_ms']:.0f} ms period; sequential, storage "
               f"{mem['storage']}; wall as the emulator sees it")
        for mb, r in mem["sizes"].items():
            parts = [f"cold start {r['cold_start_wall_ms']:.1f} ms"]
            for alg in ("RS256", "ES256"):
                fig = r.get(alg)
                if fig:
                    parts.append(f"{alg} p50 {fig['p50_ms']:.2f} / p99 {fig['p99_ms']:.2f} ms "
                                 f"(throttled {fig['throttled_ms_per_request']:.2f} ms/request)")
            target = ok = ""
            if mb == "256":
                worst = max(r[alg]["p99_ms"] for alg in ("RS256", "ES256") if alg in r)
                target, ok = "p99 <= 10 ms", verdict(worst, 10.0)
                summary["targets"]["256 MB warm p99 <= 10 ms (emulator included)"] = ok
            row(sec, f"{mb} MB ({r['cpu_share']:.3f} vCPU)", "; ".join(parts), target, ok)
        # Cost per million client_credentials tokens (us-east-1 list prices, arm64): Lambda
        # bills whole milliseconds of the invocation; HTTP API and DynamoDB per request.
        sec = ("cost per million client_credentials tokens (us-east-1, arm64: $0.20/M requests + "
               "$0.0000133334/GB-s; HTTP API $1.00/M; DynamoDB on-demand $0.125/M read units, an eventually consistent GetItem = 0.5; billed ms = "
               "ceil(ES256 p50 here), real DynamoDB adds ~2-5 ms of wall that is billed too)")
        for mb, r in mem["sizes"].items():
            fig = r.get("ES256") or r.get("RS256")
            if not fig:
                continue
            billed_ms = -(-fig["p50_ms"] // 1)
            lam = 0.20 + billed_ms / 1000 * int(mb) / 1024 * 0.0000133334 * 1e6
            total = lam + 1.00 + 0.0625
            cached = lam + 1.00
            row(sec, f"{mb} MB", f"${total:.3f} (Lambda ${lam:.3f} of it); with CLIENT_CACHE_SECONDS ${cached:.3f}")

    # --- throughput ----------------------------------------------------------------------
    tp = local.get("throughput")
    if tp:
        sec = f"throughput, client_credentials, {tp['seconds']:.0f} s, concurrency {tp['concurrency']} ({tp['instances']} instances, {tp['tool']})"
        lat = tp.get("latency", {})
        row(sec, "requests/s", f"{tp['requests_per_s']:.1f} ({tp['non_2xx']} non-2xx; p50 {lat.get('50%', '?')}, p99 {lat.get('99%', '?')})")
        c = tp["cpu"]
        row(sec, "CPU, cores busy (share of machine)",
            "; ".join(f"{k} {v['cores']:.2f} ({v['pct_of_machine']:.0f}%)" for k, v in c.items()))
        row(sec, "CPU per request", f"function {tp['function_cpu_ms_per_request']:.2f} ms, moto {tp['moto_cpu_ms_per_request']:.2f} ms"
            + f" (load avg {tp['loadavg_1m_before_after'][0]:.1f}->{tp['loadavg_1m_before_after'][1]:.1f})")

    # --- sizes ---------------------------------------------------------------------------
    sec = "size"
    if x86:
        for name in ("token", "authorize"):
            size = x86.get(f"x86_64_release_{name}_bytes")
            if size is not None:
                row(sec, f"x86_64 release {name} binary", f"{size / MIB:.2f} MiB")
    if zips is not None:
        worst = None
        for name, z in zips.items():
            mib = z["zip_bytes"] / MIB
            v = verdict(mib, TARGETS["zip_mib"])
            worst = v if worst in (None, "MET") else worst
            row(sec, f"arm64 {name}/bootstrap.zip", f"{mib:.2f} MiB (bootstrap {z['bootstrap_bytes'] / MIB:.2f} MiB)", "<= 4 MiB", v)
        if worst:
            summary["targets"]["arm64 zips <= 4 MiB"] = worst
    else:
        row(sec, "arm64 zips", "skipped (BENCH_SKIP_ARM64)")

    result = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "loadavg": os.getloadavg()},
        "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
        "summary": summary,
        "criterion": crit,
        "criterion_meta": meta,
        "local_stack": local,
        "x86_64": x86,
        "arm64_zips": zips,
        "table": [dict(zip(("section", "item", "value", "target", "verdict"), r)) for r in rows],
    }
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)

    w_item = max((len(r[1]) for r in rows), default=10)
    last = None
    for sec, item, value, target, ok in rows:
        if sec != last:
            print(f"\n{sec}")
            last = sec
        tail = f"   [{target}: {ok}]" if target else ""
        print(f"  {item:<{w_item}}  {value}{tail}")
    print("\nTargets:")
    for k, v in summary["targets"].items():
        print(f"  {v:<8} {k}")
    print(f"\nwritten: {a.out}")


if __name__ == "__main__":
    sys.exit(main())

"""Markdown tables (with the issue-10 targets and their verdicts) for README.md's generated
Performance blocks, from the reports the bench scripts leave. Standard library only.

    python3 bench/tables.py turn-loadtest OUT "MODES" COTURN_VERSION   # bench/turn-loadtest.sh
    python3 bench/tables.py conference OUT "RUNS" "PEERS" JANUS_VERSION # bench/conference.sh
    python3 bench/tables.py micro CRITERION_DIR                        # bench/micro.sh

Each prints the table and the targets on stdout; the scripts put the header line
(readme_block.header) above it and write the block with readme_block.replace_block.
With --header SCRIPT TITLE LOAD PARAMS WHAT first, the block's header line is printed first
(alone when no subcommand follows).
"""

import json
import os
import pathlib
import sys

from readme_block import fmt_mib, fmt_ms, fmt_ns, fmt_us, header, load_report, target, verdict

# Issue 10's targets and the peer baselines it quotes.
SFU_US_PER_PACKET = 5.0
SFU_JANUS_RATIO = 0.25
TURN_COTURN_RATIO = 2.0
COTURN_RELAYED_PER_CPU_S = 82_000
XMPP_MSGS_PER_CPU_S = 50_000
REST_REQUESTS_PER_CORE = 10_000


def server(rep, key):
    return ((rep or {}).get("server") or {}).get(key)


def kernel_us(rep):
    """Server kernel (system) CPU µs per unit, from reports that keep it."""
    k = server(rep, "kernel_cpu_s")
    ops = ((rep or {}).get("totals") or {}).get("ops")
    return k * 1e6 / ops if k is not None and ops else None


def ratio(a, b):
    return a / b if a and b else None


def fmt_ratio(r, suffix=""):
    return "" if r is None else f" ({r:.2f}×{suffix})"


def lat_cell(rep, op, keys=("p50_us", "p99_us")):
    lat = ((rep or {}).get("latencies") or {}).get(op)
    if not lat or not lat.get("count"):
        return "–"
    return " / ".join(fmt_ms(lat[k]) for k in keys) + " ms"


# ---------------------------------------------------------------------------------------------
# TURN with `loadtest turn` (bench/turn-loadtest.sh)


def turn_loadtest(out, modes, coturn_version):
    lines = []
    verdicts = []
    for mode in modes.split():
        sb = load_report(os.path.join(out, f"{mode}-switchboard.json"))
        co = load_report(os.path.join(out, f"{mode}-coturn.json"))
        if not sb and not co:
            continue
        reps = (sb, co)
        allocate = mode.startswith("allocate")
        what = "allocation" if allocate else "relayed packet"
        transport = mode.split("-", 1)[1].upper()
        lines.append(
            f"*{'Allocations' if allocate else 'Relay'}, {transport}*"
            + (" (each the full 401 + authenticated Allocate exchange, then a release):" if allocate else ":")
        )
        lines.append("")
        lines.append(f"| | Switchboard | coturn {coturn_version} |")
        lines.append("|---|---|---|")
        if any(r and r.get("partial") for r in reps):
            lines.append("| partial run (ended early) | " + " | ".join(
                "yes" if r and r.get("partial") else "no" for r in reps) + " |")

        def row(label, fn):
            lines.append(f"| {label} | " + " | ".join(fn(r) if r else "–" for r in reps) + " |")

        row(f"{what}s/s (whole run)", lambda r: f"{r['totals']['rate']:,.0f}")
        if not allocate:
            row("lost on the way", lambda r: f"{r['counters'].get('packets_lost', 0):,}")
        cpu = [server(r, "cpu_us_per_unit") for r in reps]
        row(
            f"server CPU per {what}",
            lambda r: fmt_us(server(r, "cpu_us_per_unit"), 2 if not allocate else 0)
            + (fmt_ratio(ratio(cpu[0], cpu[1]), " coturn's") if r is sb else ""),
        )
        per = [server(r, "units_per_cpu_s") for r in reps]
        row(
            f"{what}s per server CPU-second",
            lambda r: (f"{server(r, 'units_per_cpu_s'):,.0f}" if server(r, "units_per_cpu_s") else "–")
            + (fmt_ratio(ratio(per[0], per[1])) if r is sb else ""),
        )
        if allocate:
            row("allocate latency p50 / p99", lambda r: lat_cell(r, "allocate"))
        else:
            row("one-way latency client → peer, p50 / p99", lambda r: lat_cell(r, "channel" if "channel" in r["latencies"] else "all"))
        row("errors", lambda r: f"{r['totals']['errors']:,} ({r['totals']['error_pct']:.2f} %)")
        row("peak RSS", lambda r: fmt_mib(server(r, "rss_max_bytes")))
        lines.append("")
        if not allocate:
            r = ratio(per[0], per[1])
            verdicts.append(
                target(
                    f"{transport}: ≥ {TURN_COTURN_RATIO:g}× coturn's relayed packets per CPU-second",
                    None if r is None else r >= TURN_COTURN_RATIO,
                    None if r is None else f"{r:.2f}×",
                )
            )
    if verdicts:
        lines.append(
            f"Target (issue 10; coturn 4.6.1 measured ≈ {COTURN_RELAYED_PER_CPU_S // 1000} k relayed "
            "packets per CPU-second there): " + "; ".join(verdicts) + "."
        )
    if any(m.startswith("allocate") for m in modes.split()):
        lines.append(
            "Allocations have no target (issue 5 asks for the figure; it quotes coturn at about 700/s on a 4-vCPU VM)."
        )
    print("\n".join(lines).rstrip())


# ---------------------------------------------------------------------------------------------
# Conferences (bench/conference.sh)


def steady_cpu_us(rep):
    """Server CPU µs per forwarded packet over the per-second samples 5 s after the ramp-up."""
    if not rep:
        return None
    start = float(rep.get("params", {}).get("ramp_up_s", 0)) + 5
    steady = [s for s in rep["series"] if s["t"] >= start and s.get("server_cpu_s") is not None]
    ops = sum(s["ops"] for s in steady)
    cpu = sum(s["server_cpu_s"] for s in steady)
    return cpu * 1e6 / ops if ops and cpu else None


def conference(out, runs, peers, janus_version):
    names = {"switchboard": "Switchboard", "janus": f"Janus {janus_version}"}
    lines = [
        "| run | server | forwarded pkt/s | server CPU per forwarded packet | … of it in the kernel "
        "| … steady (5 s after ramp-up) | loss | one-way latency p50 / p99 / max | join p50 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    per_run = []
    for run in runs.split():
        rooms, participants = run.split("x")
        label = f"{rooms} room{'s' if rooms != '1' else ''} × {participants}"
        reps = {s: load_report(os.path.join(out, f"conference-{run}-{s}.json")) for s in ["switchboard"] + peers.split()}
        sb_cpu = server(reps["switchboard"], "cpu_us_per_unit")
        janus_cpu = server(reps.get("janus"), "cpu_us_per_unit")
        per_run.append((run, sb_cpu, ratio(sb_cpu, janus_cpu)))
        for s, rep in reps.items():
            if not rep:
                lines.append(f"| {label} | {names.get(s, s)} | no report | | | | | | |")
                continue
            cpu = server(rep, "cpu_us_per_unit")
            cell = fmt_us(cpu)
            if s == "switchboard" and janus_cpu:
                cell += fmt_ratio(ratio(cpu, janus_cpu), " Janus")
            lost = rep["counters"].get("packets_lost", 0)
            got = rep["totals"]["ops"]
            pct = 100 * lost / (lost + got) if lost and got else 0
            loss = f"{lost:,} ({'< 0.01' if pct < 0.01 else f'{pct:.2f}'} %)" if lost and got else f"{lost:,}"
            partial = " (partial run)" if rep.get("partial") else ""
            lines.append(
                f"| {label} | {names.get(s, s)}{partial} | {rep['totals']['rate']:,.0f} | {cell} | {fmt_us(kernel_us(rep))} | {fmt_us(steady_cpu_us(rep))} "
                f"| {loss} | {lat_cell(rep, 'all', ('p50_us', 'p99_us', 'max_us'))} | {lat_cell(rep, 'join', ('p50_us',))} |"
            )
    lines.append("")
    measured = [(run, c) for run, c, _ in per_run if c is not None]
    ratios = [(run, r) for run, _, r in per_run if r is not None]
    lines.append(
        "Targets (issue 10; Janus 1.1.2 measured 50–90 µs per forwarded packet at light load there): "
        + target(
            f"≤ {SFU_US_PER_PACKET:g} µs server CPU per forwarded packet",
            all(c <= SFU_US_PER_PACKET for _, c in measured) if measured else None,
            ", ".join(f"{run}: {c:.1f} µs" for run, c in measured),
        )
        + "; "
        + target(
            f"≤ {SFU_JANUS_RATIO:g}× Janus's",
            all(r <= SFU_JANUS_RATIO for _, r in ratios) if ratios else None,
            ", ".join(f"{run}: {r:.2f}×" for run, r in ratios),
        )
        + "."
    )
    print("\n".join(lines))


# ---------------------------------------------------------------------------------------------
# Criterion micro-benchmarks (bench/micro.sh)

# The named hot paths of issue 10 (id as criterion names it; "per" divides by its elements).
HOT_PATHS = [
    ("SFU: forward to one subscriber (simulcast gate + seq/ts rewrite + copy), of 11", "sfu/forward_fan_out/11", "per"),
    ("SFU: simulcast gate + rewrite, 3 layers switching", "sfu/simulcast/gate_and_rewrite_3_layers_switching", ""),
    ("SFU: one packet through the shard and str0m to one subscriber, of 11 (its share of the "
     "decrypt, gate, rewrite, write_rtp, str0m's timeout pass and poll, SRTP seal; no syscalls)",
     "sfu/str0m_forward/1_publisher_11_subscribers", ""),
    ("SFU: SRTP protect 1200 B, AEAD-AES-256-GCM", "sfu/srtp_protect/aead_aes_256_gcm_1200B", ""),
    ("SFU: SRTP protect 1200 B, AES-CM + HMAC-SHA1-80", "sfu/srtp_protect/aes_128_cm_hmac_sha1_80_1200B", ""),
    ("TURN: STUN parse (signed CreatePermission)", "turn/stun/parse_signed_request", ""),
    ("TURN: STUN parse + MESSAGE-INTEGRITY check", "turn/stun/parse_and_verify_integrity", ""),
    ("TURN: STUN build (Binding success)", "turn/stun/build_binding_success", ""),
    ("TURN: ChannelData relay client → peer, 1200 B", "turn/channel_data/client_to_peer_1200B", ""),
    ("TURN: ChannelData relay peer → client, 1200 B", "turn/channel_data/peer_to_client_1200B", ""),
    ("XMPP: stanza parse (framing a chat message)", "xmpp/stanza/tcp_framer_feed_chat_message", ""),
    ("XMPP: stanza serialise", "xmpp/stanza/to_xml_chat_message", ""),
    ("XMPP: route to one resource", "xmpp/route_to_resources/1", ""),
    ("Control: session-token (QB-Token) check over SQLite", "control/session_token/authenticate_sqlite", ""),
    ("Loopback limit: one sendmsg of 1216 B", "udp_loopback/quinn_udp_send_1x1216B", ""),
    ("Loopback limit: sendmmsg of 32 to 4 destinations, per packet", "udp_loopback/sendmmsg_32x1216B_4_destinations", "per"),
    ("Loopback limit: one 53-segment GSO send, per packet", "udp_loopback/quinn_udp_gso_53x1216B", "per"),
]


def criterion_results(root):
    """{full_id: (ns per iteration, elements per iteration)} from criterion's JSON."""
    results = {}
    for bench in sorted(pathlib.Path(root).glob("**/new/benchmark.json")):
        meta = json.loads(bench.read_text())
        est = json.loads((bench.parent / "estimates.json").read_text())
        ns = (est.get("slope") or est["mean"])["point_estimate"]
        elements = (meta.get("throughput") or {}).get("Elements", 1)
        results[meta["full_id"]] = (ns, elements, meta.get("throughput") or {})
    return results


def micro(root):
    res = criterion_results(root)

    def ns(bench_id, per=""):
        if bench_id not in res:
            return None
        t, n, _ = res[bench_id]
        return t / n if per else t

    # Per-unit budgets that issue 10's targets leave for the whole server, in ns: the user-space
    # hot path of one unit must fit well inside them (the kernel's send is most of a unit).
    sfu = [ns("sfu/forward_fan_out/11", "per"), ns("sfu/srtp_protect/aead_aes_256_gcm_1200B")]
    sfu_str0m = [ns("sfu/str0m_forward/1_publisher_11_subscribers")]
    turn = [ns("turn/channel_data/client_to_peer_1200B")]
    xmpp = [ns("xmpp/stanza/tcp_framer_feed_chat_message"), ns("xmpp/stanza/to_xml_chat_message"),
            ns("xmpp/route_to_resources/1")]
    token = [ns("control/session_token/authenticate_sqlite")]
    sendmsg = [ns("udp_loopback/quinn_udp_send_1x1216B")]
    budgets = [
        ("SFU: our gate + rewrite and the SRTP cipher alone, per subscriber", sfu, SFU_US_PER_PACKET * 1e3,
         f"≤ {SFU_US_PER_PACKET:g} µs CPU per forwarded packet"),
        ("SFU: the whole user-space forward path through str0m, per subscriber", sfu_str0m,
         SFU_US_PER_PACKET * 1e3, f"≤ {SFU_US_PER_PACKET:g} µs CPU per forwarded packet"),
        ("TURN ChannelData relay (client → peer)", turn, 1e9 / (TURN_COTURN_RATIO * COTURN_RELAYED_PER_CPU_S),
         f"≥ {TURN_COTURN_RATIO:g}× coturn's ≈ {COTURN_RELAYED_PER_CPU_S // 1000} k relayed packets per CPU-second"),
        ("XMPP parse + serialise + route of a chat message", xmpp, 1e9 / XMPP_MSGS_PER_CPU_S,
         f"≥ {XMPP_MSGS_PER_CPU_S // 1000} k msgs per server CPU-second"),
        ("REST session-token check", token, 1e9 / REST_REQUESTS_PER_CORE,
         f"≥ {REST_REQUESTS_PER_CORE // 1000} k requests/s per core"),
        ("one sendmsg per forwarded packet (loopback)", sendmsg, SFU_US_PER_PACKET * 1e3,
         f"≤ {SFU_US_PER_PACKET:g} µs CPU per forwarded packet"),
    ]

    print("| hot path | benchmark | time |")
    print("|---|---|---|")
    for name, bench_id, per in HOT_PATHS:
        t = ns(bench_id, per)
        print(f"| {name} | `{bench_id}` | {fmt_ns(t)} |")
    print()
    print("| part of one unit of work | time | whole-server budget per unit (issue 10) | fits |")
    print("|---|---|---|---|")
    for name, parts, budget, why in budgets:
        total = None if None in parts else sum(parts)
        print(
            f"| {name} | {fmt_ns(total)} | {fmt_ns(budget)} ({why}) "
            f"| {verdict(None if total is None else total <= budget)} |"
        )
    others = sorted(set(res) - {b for _, b, _ in HOT_PATHS})
    if others:
        print()
        print("<details><summary>Every other benchmark of the run</summary>")
        print()
        print("| benchmark | time per iteration | per element |")
        print("|---|---|---|")
        for bench_id in others:
            t, n, tp = res[bench_id]
            each = f"{fmt_ns(t / n)} × {n}" if n > 1 else (f"{tp['Bytes'] / t:.3g} GB/s" if "Bytes" in tp else "")
            print(f"| `{bench_id}` | {fmt_ns(t)} | {each} |")
        print()
        print("</details>")


def main():
    args = sys.argv[1:]
    if args and args[0] == "--header" and len(args) >= 6:
        print(header(*args[1:6]))
        args = args[6:]
        if not args:
            return
    if not args:
        sys.exit(__doc__)
    cmd, rest = args[0], args[1:]
    if cmd == "turn-loadtest":
        turn_loadtest(*rest)
    elif cmd == "conference":
        conference(*rest)
    elif cmd == "micro":
        micro(*rest)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()

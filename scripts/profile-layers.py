#!/usr/bin/env python3
"""Attributes `perf script -F pid,tid,ip,sym` samples of the first process seen (the daemon, when
recording `crego-credgenics-sync bench`) to layers, by the first layer named anywhere in a
sample's stack (order below). Used for the profile table of BENCHMARKS.md:

    perf record -F 2000 -g --call-graph dwarf,32768 -o perf.data -- \
        target/release/crego-credgenics-sync bench --leads 10000 --rate 0 --overlap-secs 1
    perf script -i perf.data -F pid,tid,ip,sym > perf.txt && python3 scripts/profile-layers.py perf.txt
"""
import sys, re, collections
# perf script output: header line "pid/tid" then stack frames, blank line between samples
cats = [
 ("mapping (jaq)", ["mapping::FieldSet::eval", "mapping::Input", "mapping::to_val", "map_loan"]),
 ("preflight+hash", ["credgenics::preflight", "rules::check_upload", "payload_hash", "round_amounts"]),
 ("sqlite", ["sqlite3", "rusqlite", "store::Store"]),
 ("json parse (responses)", ["http::Response::json", "parse_page", "LineItem::from_value"]),
 ("json serialize (requests)", ["serde_json::ser", "reqwest::async_impl::request::RequestBuilder::json"]),
 ("http client (reqwest/hyper)", ["reqwest::", "hyper::", "hyper_util::", "http::ApiClient", "h1::"]),
 ("tokio runtime/sched", ["tokio::runtime"]),
]
tot=collections.Counter(); per=collections.Counter()
cur=None; frames=[]
def flush():
    if cur is None: return
    pid=cur
    tot[pid]+=1
    if pid!=daemon: return
    for name,keys in cats:
        if any(any(k in f for k in keys) for f in frames):
            per[name]+=1; return
    # leaf-based fallback
    leaf = frames[0] if frames else "?"
    if "[k]" in leaf or leaf.startswith("do_") or "entry_SYSCALL" in " ".join(frames): per["kernel (syscalls, other)"]+=1
    else: per["other"]+=1
daemon=None
for line in open(sys.argv[1], errors="replace"):
    line=line.rstrip("\n")
    if not line.strip():
        flush(); cur=None; frames=[]; continue
    if not line.startswith((" ","\t")):
        parts=line.split()
        pid=parts[0].split("/")[0]
        if daemon is None: daemon=pid
        cur=pid; frames=[]
    else:
        frames.append(line.strip())
flush()
print("pids", tot.most_common(4), "daemon", daemon)
d=tot[daemon]
for k,v in per.most_common(): print(f"{k:32s} {v:6d} {100*v/d:5.1f}%")

#!/usr/bin/env python3
"""Differential check of Covenant's canonical ABI against the Component Model's
reference definitions (design/mvp/canonical-abi/definitions.py, not vendored).

  abi_spec_dump 200 1 > dump.json
  python3 spec_diff.py path/to/definitions.py dump.json

For every random type: alignment, elem_size and flatten_type must equal
Covenant's; for every function: flatten_functype (lift and lower contexts) must
equal Covenant's core signatures; for every random value Covenant stored into
memory: the reference `load` of those bytes must give the same value (compared
through Covenant's JSON mapping), and the reference `lift_flat` of Covenant's
flat lowering must too. Exit status 0 when everything agrees.
"""
import importlib.util
import json
import math
import sys


def main():
    spec_path, dump_path = sys.argv[1], sys.argv[2]
    spec = importlib.util.spec_from_file_location("definitions", spec_path)
    d = importlib.util.module_from_spec(spec)
    sys.modules["definitions"] = d  # dataclasses look their module up by name
    spec.loader.exec_module(d)
    packages = json.load(open(dump_path))

    prims = {"bool": d.BoolType, "s8": d.S8Type, "u8": d.U8Type, "s16": d.S16Type, "u16": d.U16Type,
             "s32": d.S32Type, "u32": d.U32Type, "s64": d.S64Type, "u64": d.U64Type, "f32": d.F32Type,
             "f64": d.F64Type, "char": d.CharType, "string": d.StringType}

    class Opts:  # what flatten_* read from CanonicalOptions
        async_ = False
        callback = None
        string_encoding = "utf8"

        class memory:
            @staticmethod
            def ptr_type():
                return "i32"

    failures = 0
    checked = {"types": 0, "functions": 0, "values": 0, "flat": 0}

    def fail(msg):
        nonlocal failures
        failures += 1
        if failures <= 20:
            print("MISMATCH:", msg)

    for pkg in packages:
        types = pkg["types"]
        built = {}

        def build(i):
            if i is None:
                return None
            if i in built:
                return built[i]
            t = types[i]
            k = t["kind"]
            if k in prims:
                v = prims[k]()
            elif k == "list":
                v = d.ListType(build(t["elem"]))
            elif k == "option":
                v = d.OptionType(build(t["elem"]))
            elif k == "result":
                v = d.ResultType(build(t["ok"]), build(t["err"]))
            elif k == "tuple":
                v = d.TupleType([build(f["type"]) for f in t["fields"]])
            elif k == "record":
                v = d.RecordType([d.FieldType(f["name"], build(f["type"])) for f in t["fields"]])
            elif k == "variant":
                v = d.VariantType([d.CaseType(f["name"], build(f["type"])) for f in t["fields"]])
            elif k == "enum":
                v = d.EnumType([f["name"] for f in t["fields"]])
            elif k == "flags":
                v = d.FlagsType([f["name"] for f in t["fields"]])
            else:
                raise ValueError(k)
            built[i] = v
            return v

        def to_json(i, v):
            """Reference value -> Covenant's JSON mapping (docs/abi.md)."""
            t = types[i]
            k = t["kind"]
            if k in ("s64", "u64"):
                return str(v)
            if k in ("f32", "f64"):
                if math.isnan(v):
                    return "NaN"
                if math.isinf(v):
                    return "Infinity" if v > 0 else "-Infinity"
                return v
            if k == "string":
                return v[0]
            if k in prims:
                return v
            if k == "list":
                return [to_json(t["elem"], x) for x in v]
            if k == "tuple":
                return [to_json(f["type"], v[str(n)]) for n, f in enumerate(t["fields"])]
            if k == "record":
                return {f["name"]: to_json(f["type"], v[f["name"]]) for f in t["fields"]}
            if k == "enum":
                (label,) = v.keys()
                return label
            if k == "flags":
                return [f["name"] for f in t["fields"] if v[f["name"]]]
            if k == "variant":
                ((label, x),) = v.items()
                f = next(f for f in t["fields"] if f["name"] == label)
                return {label: None if f["type"] is None else to_json(f["type"], x)}
            if k == "option":
                ((label, x),) = v.items()
                if label == "none":
                    return None
                inner = to_json(t["elem"], x)
                return {"some": inner} if types[t["elem"]]["kind"] == "option" else inner
            if k == "result":
                ((label, x),) = v.items()
                p = t["ok"] if label == "ok" else t["err"]
                return {"ok" if label == "ok" else "err": None if p is None else to_json(p, x)}
            raise ValueError(k)

        def same(a, b):
            if isinstance(a, float) or isinstance(b, float):
                return isinstance(a, (int, float)) and isinstance(b, (int, float)) and float(a) == float(b)
            if isinstance(a, list) and isinstance(b, list):
                return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
            if isinstance(a, dict) and isinstance(b, dict):
                return a.keys() == b.keys() and all(same(a[x], b[x]) for x in a)
            return a == b

        for t in types:
            st = build(t["id"])
            checked["types"] += 1
            a, s = d.alignment(st, "i32"), d.elem_size(st, "i32")
            if (a, s) != (t["align"], t["size"]):
                fail(f"seed {pkg['seed']} type {t['id']} ({t['kind']}): spec align/size {a}/{s}, ours {t['align']}/{t['size']}")
            flat = d.flatten_type(st, Opts)
            if t["flat"] is not None and flat != t["flat"]:
                fail(f"seed {pkg['seed']} type {t['id']}: spec flat {flat}, ours {t['flat']}")
            if t["flat"] is None and len(flat) <= d.MAX_FLAT_PARAMS:
                fail(f"seed {pkg['seed']} type {t['id']}: marked overflow but spec flattens to {len(flat)}")

        for fn in pkg["functions"]:
            checked["functions"] += 1
            res = [build(r) for r in fn["results"]]
            ft = d.FuncType([(f"p{n}", build(p)) for n, p in enumerate(fn["params"])],
                            res if len(res) <= 1 else [(f"r{n}", r) for n, r in enumerate(res)])
            for ctx, ours in (("lift", fn["export"]), ("lower", fn["import"])):
                ct = d.flatten_functype(Opts, ft, ctx)
                if (ct.params, ct.results) != (ours["params"], ours["results"]):
                    fail(f"seed {pkg['seed']} {fn['name']} {ctx}: spec {ct.params}->{ct.results}, ours {ours}")

        for v in pkg["values"]:
            checked["values"] += 1
            mem = d.MemInst(bytearray(v["memory"]) + bytearray(64), "i32")
            opts = d.LiftLowerOptions(string_encoding="utf8", memory=mem)
            cx = d.LiftLowerContext(opts, None)
            st = build(v["type"])
            got = to_json(v["type"], d.load(cx, v["ptr"], st))
            if not same(got, v["json"]):
                fail(f"seed {pkg['seed']} type {v['type']}: spec load gives {got}, ours {v['json']}")
            if v["flat"] is not None:
                checked["flat"] += 1
                vals = []
                for ty, bits in v["flat"]:
                    b = int(bits)
                    if ty == "f32":
                        vals.append(d.core_f32_reinterpret_i32(b))
                    elif ty == "f64":
                        vals.append(d.core_f64_reinterpret_i64(b))
                    else:
                        vals.append(b)
                got = to_json(v["type"], d.lift_flat(cx, d.CoreValueIter(vals), st))
                if not same(got, v["json"]):
                    fail(f"seed {pkg['seed']} type {v['type']}: spec lift_flat gives {got}, ours {v['json']}")

    print(f"checked {checked['types']} types, {checked['functions']} functions, "
          f"{checked['values']} stored values, {checked['flat']} flat lowerings: {failures} mismatches")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

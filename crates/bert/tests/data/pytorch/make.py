"""Generates the pytorch_model.bin fixtures of `crates/bert/src/weights/pytorch.rs`.

Written with torch 2.15.0 and safetensors 0.8.0 (`python make.py` in this directory); seeded, so a rerun
with the same versions gives the same tensor values (the zip timestamps may differ).

Files:
- state_dict.bin            torch.save of an OrderedDict: f32 / f16 / bf16 / f64 tensors, a 0-dim tensor, an
                            empty tensor, a transposed (non-contiguous) view, a slice view with a storage
                            offset sharing storage with another tensor, an nn.Parameter, a nested
                            OrderedDict, int64 / bool / uint16 (`_rebuild_tensor_v3`) buffers, and
                            `_metadata` set through BUILD.
- state_dict.safetensors    the expected values: every float tensor of state_dict.bin, made contiguous,
                            f64 converted to f32, nested names joined with '.'; non-float tensors absent.
- deflated.bin              state_dict.bin rewritten with every zip entry ZIP_DEFLATED.
- big_endian.bin            f32 tensors with `byteorder` = "big" and byte-swapped storages.
- big_endian.safetensors    its expected values.
- int_weight.bin            an int64 tensor under a BertModel weight name (must be an error).
- oob.bin                   a storage shorter than its tensor needs (must be an error).
- legacy.bin                the pre-1.6 (non-zip) torch.save format (must be an error).
- list_root.bin             torch.save of a list of tensors instead of a dict (must be an error).
"""

import collections
import io
import zipfile

import torch
from safetensors.torch import save_file

torch.manual_seed(0)


def rezip(src, dst, transform=lambda name, data: data, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression=compression) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, transform(info.filename, zin.read(info.filename)))


# --- state_dict.bin -------------------------------------------------------------------------------
base = torch.randn(4, 6)
sd = collections.OrderedDict()
sd["embeddings.word_embeddings.weight"] = base  # f32, contiguous
sd["encoder.layer.0.attention.self.query.weight"] = base.t()  # transposed view of the same storage
sd["encoder.layer.0.attention.self.key.weight"] = base[1:3, 2:5]  # storage offset + row stride 6
sd["half"] = torch.randn(3, 5).half()
sd["bf16"] = torch.randn(7).bfloat16()
sd["double"] = torch.randn(2, 3, dtype=torch.float64)
sd["scalar"] = torch.tensor(2.5)
sd["empty"] = torch.zeros(0, 3)
sd["half_t"] = torch.randn(2, 3, 4).half().permute(2, 0, 1)  # 3-d non-contiguous
sd["param"] = torch.nn.Parameter(torch.randn(3))
sd["nested"] = collections.OrderedDict(inner=torch.randn(2, 2), deeper={"leaf": torch.randn(3)})
sd["embeddings.position_ids"] = torch.arange(8).expand((1, -1))  # int64 buffer: skipped
sd["mask"] = torch.tensor([True, False])  # bool: skipped
sd["u16"] = torch.tensor([1, 2, 3], dtype=torch.int32).to(torch.uint16)  # _rebuild_tensor_v3: skipped
sd["step"] = 7  # not a tensor: skipped
sd._metadata = {"": {"version": 1}}
torch.save(sd, "state_dict.bin")

expected = {}


def flatten(prefix, d):
    for k, v in d.items():
        if isinstance(v, dict):
            flatten(f"{prefix}{k}.", v)
        elif isinstance(v, torch.Tensor) and v.dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
            v = v.detach()
            if v.dtype == torch.float64:
                v = v.float()
            expected[prefix + k] = v.contiguous().clone()


flatten("", sd)
save_file(expected, "state_dict.safetensors")

# --- deflated.bin ---------------------------------------------------------------------------------
rezip("state_dict.bin", "deflated.bin", compression=zipfile.ZIP_DEFLATED)

# --- big_endian.bin -------------------------------------------------------------------------------
be = {"a": torch.randn(2, 3), "b": torch.randn(3, 2).t()}
torch.save(be, "be_tmp.bin")


def to_big(name, data):
    if name.endswith("/byteorder"):
        return b"big"
    if "/data/" in name and not name.endswith("serialization_id"):
        return b"".join(data[i : i + 4][::-1] for i in range(0, len(data), 4))
    return data


rezip("be_tmp.bin", "big_endian.bin", to_big)
save_file({k: v.contiguous() for k, v in be.items()}, "big_endian.safetensors")

# --- error cases ----------------------------------------------------------------------------------
torch.save({"encoder.layer.0.attention.self.query.weight": torch.arange(6).reshape(2, 3)}, "int_weight.bin")

torch.save({"embeddings.word_embeddings.weight": torch.randn(4, 4)}, "oob_tmp.bin")
rezip("oob_tmp.bin", "oob.bin", lambda name, data: data[:20] if "/data/0" in name else data)

torch.save({"w": torch.randn(2)}, "legacy.bin", _use_new_zipfile_serialization=False)
torch.save([torch.randn(2)], "list_root.bin")

import os

for tmp in ("be_tmp.bin", "oob_tmp.bin"):
    os.remove(tmp)

//! The pickle VM of [`super`]: runs the `data.pkl` of a `torch.save` archive and returns its state
//! dict as (name, tensor description) pairs. It understands the opcodes `torch.save` emits and only
//! the callables that build dicts and tensors; any other object is kept as an opaque value and never
//! executed. Every read is bounds-checked: a malformed pickle is an error string, never a panic.

use std::collections::HashMap;

/// Element type of a storage or tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Elem {
    F32,
    F16,
    BF16,
    F64,
    /// Any non-float type: never read.
    Other,
}

impl Elem {
    pub(super) fn size(self) -> usize {
        match self {
            Elem::F32 => 4,
            Elem::F16 | Elem::BF16 => 2,
            Elem::F64 => 8,
            Elem::Other => 1,
        }
    }

    /// From a storage class name (`FloatStorage`, ...).
    fn from_storage(name: &str) -> Self {
        match name {
            "FloatStorage" => Elem::F32,
            "HalfStorage" => Elem::F16,
            "BFloat16Storage" => Elem::BF16,
            "DoubleStorage" => Elem::F64,
            _ => Elem::Other,
        }
    }

    /// From a `torch.<dtype>` global name.
    fn from_dtype(name: &str) -> Self {
        match name {
            "float32" | "float" => Elem::F32,
            "float16" | "half" => Elem::F16,
            "bfloat16" => Elem::BF16,
            "float64" | "double" => Elem::F64,
            _ => Elem::Other,
        }
    }
}

/// A storage reference from a persistent id `('storage', type, key, location, numel)`.
#[derive(Clone, Debug)]
pub(super) struct StorageRef {
    elem: Option<Elem>,
    type_name: String,
    key: String,
}

/// A tensor as `_rebuild_tensor_v2/v3` describes it. Offset and strides are in elements.
#[derive(Clone, Debug)]
pub(super) struct TensorSpec {
    pub(super) key: String,
    pub(super) elem: Elem,
    pub(super) elem_name: String,
    pub(super) offset: usize,
    pub(super) size: Vec<usize>,
    pub(super) stride: Vec<usize>,
}

/// Index of an object in the VM's arena.
type Id = usize;

/// A pickle object. Containers refer to their items by arena index, which gives Python's reference
/// semantics (a memoized dict filled later is seen filled), allows cycles, and drops without
/// recursion.
#[derive(Debug)]
enum Obj {
    None,
    Bool(bool),
    Int(i64),
    Float,
    Str(String),
    Bytes,
    Tuple(Vec<Id>),
    List(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Global(String, String),
    Storage(StorageRef),
    /// Boxed: the largest variant by far, it would double the size of every object.
    Tensor(Box<TensorSpec>),
    /// The result of a callable the VM does not model (its qualified name); never executed.
    Opaque(String),
}

/// A flattened state-dict value.
pub(super) enum Leaf {
    Tensor(TensorSpec),
    /// A `torch.*` object that is not a plain tensor (quantized, sparse, ...).
    Unsupported(String),
}

pub(super) type VmResult<T> = std::result::Result<T, String>;

/// Most opcodes a pickle may run. A BERT-large state dict runs about 11,000 (some 30 per tensor);
/// the cap bounds the VM's memory (each opcode adds at most one object, stack slot or memo entry)
/// whatever the pickle's length.
const MAX_OPCODES: usize = 1 << 18;

pub(super) struct Vm {
    objs: Vec<Obj>,
    root: Id,
    /// Length of the pickle: bounds the number of dict entries a walk may visit.
    len: usize,
}

/// Execution state of one pickle.
struct Exec<'p> {
    data: &'p [u8],
    pos: usize,
    objs: Vec<Obj>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
}

impl Exec<'_> {
    fn take(&mut self, n: usize) -> VmResult<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end
            .ok_or_else(|| format!("truncated pickle (needs {n} bytes at offset {})", self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn arr<const N: usize>(&mut self) -> VmResult<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> VmResult<u8> {
        Ok(self.arr::<1>()?[0])
    }

    fn u32(&mut self) -> VmResult<u32> {
        Ok(u32::from_le_bytes(self.arr()?))
    }

    fn u64(&mut self) -> VmResult<u64> {
        Ok(u64::from_le_bytes(self.arr()?))
    }

    fn len_u64(&mut self) -> VmResult<usize> {
        let n = self.u64()?;
        usize::try_from(n).map_err(|_| format!("length {n} too large"))
    }

    fn line(&mut self) -> VmResult<String> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("truncated pickle (unterminated line)")?;
        let s = String::from_utf8_lossy(self.take(n)?).into_owned();
        self.pos += 1; // the newline, known to exist
        Ok(s)
    }

    fn push(&mut self, o: Obj) {
        self.objs.push(o);
        self.stack.push(self.objs.len() - 1);
    }

    fn pop(&mut self) -> VmResult<Id> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err("stack underflow".into());
        }
        self.stack.pop().ok_or_else(|| "stack underflow".into())
    }

    fn top(&self) -> VmResult<Id> {
        self.stack
            .last()
            .copied()
            .ok_or_else(|| "stack underflow".into())
    }

    /// Pops everything above the last MARK, and the mark.
    fn pop_mark(&mut self) -> VmResult<Vec<Id>> {
        let m = self.marks.pop().ok_or("MARK missing")?;
        if m > self.stack.len() {
            return Err("MARK below the stack".into());
        }
        Ok(self.stack.split_off(m))
    }

    fn memo_get(&mut self, key: u64) -> VmResult<()> {
        let id = *self
            .memo
            .get(&key)
            .ok_or_else(|| format!("memo key {key} not found"))?;
        self.stack.push(id);
        Ok(())
    }

    fn memo_put(&mut self, key: u64) -> VmResult<()> {
        let id = self.top()?;
        self.memo.insert(key, id);
        Ok(())
    }

    fn int(&self, id: Id) -> Option<i64> {
        match self.objs.get(id)? {
            Obj::Int(i) => Some(*i),
            Obj::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    fn usize_of(&self, id: Id, what: &str) -> VmResult<usize> {
        self.int(id)
            .and_then(|i| usize::try_from(i).ok())
            .ok_or_else(|| format!("{what} is not a non-negative integer"))
    }

    fn usizes(&self, id: Id, what: &str) -> VmResult<Vec<usize>> {
        match self.objs.get(id) {
            Some(Obj::Tuple(items) | Obj::List(items)) => {
                items.iter().map(|&i| self.usize_of(i, what)).collect()
            }
            _ => Err(format!("{what} is not a tuple")),
        }
    }

    fn str_of(&self, id: Id) -> Option<&str> {
        match self.objs.get(id)? {
            Obj::Str(s) => Some(s),
            _ => None,
        }
    }

    fn items(&self, id: Id) -> Option<&[Id]> {
        match self.objs.get(id)? {
            Obj::Tuple(v) | Obj::List(v) => Some(v),
            _ => None,
        }
    }

    /// BINPERSID: torch's `('storage', storage_type, key, location, numel)`.
    fn persistent_load(&self, pid: Id) -> VmResult<Obj> {
        let bad = || {
            "unsupported persistent id (expected ('storage', type, key, location, numel))"
                .to_string()
        };
        let items = self.items(pid).ok_or_else(bad)?;
        let [tag, ty, key, ..] = items else {
            return Err(bad());
        };
        if self.str_of(*tag) != Some("storage") {
            return Err(bad());
        }
        let Some(Obj::Global(_, type_name)) = self.objs.get(*ty) else {
            return Err(bad());
        };
        let elem = match type_name.as_str() {
            "UntypedStorage" => None,
            name => Some(Elem::from_storage(name)),
        };
        let key = match self.objs.get(*key) {
            Some(Obj::Str(s)) => s.clone(),
            Some(Obj::Int(i)) => i.to_string(),
            _ => return Err(bad()),
        };
        Ok(Obj::Storage(StorageRef {
            elem,
            type_name: type_name.clone(),
            key,
        }))
    }

    /// REDUCE / NEWOBJ: builds dicts and tensors, returns an opaque object for anything else.
    fn call(&self, func: Id, args: Id, depth: usize) -> VmResult<Obj> {
        let Some(Obj::Global(module, name)) = self.objs.get(func) else {
            return Ok(Obj::Opaque("<call of a non-global>".into()));
        };
        let args: &[Id] = self.items(args).unwrap_or_default();
        let arg = |i: usize| {
            args.get(i)
                .copied()
                .ok_or_else(|| format!("{module}.{name}: missing argument {i}"))
        };
        match (module.as_str(), name.as_str()) {
            ("collections", "OrderedDict") | ("builtins" | "__builtin__", "dict") => {
                let mut pairs = Vec::new();
                if let Some(list) = args.first().and_then(|&a| self.items(a)) {
                    for &p in list {
                        if let Some(&[k, v]) = self.items(p) {
                            pairs.push((k, v));
                        }
                    }
                }
                Ok(Obj::Dict(pairs))
            }
            ("torch._utils", "_rebuild_tensor" | "_rebuild_tensor_v2" | "_rebuild_tensor_v3") => {
                let ctx = format!("{module}.{name}");
                let Some(Obj::Storage(storage)) = self.objs.get(arg(0)?) else {
                    return Err(format!("{ctx}: the first argument is not a storage"));
                };
                let offset = self.usize_of(arg(1)?, "storage offset")?;
                let size = self.usizes(arg(2)?, "size")?;
                let stride = self.usizes(arg(3)?, "stride")?;
                if size.len() != stride.len() {
                    return Err(format!(
                        "{ctx}: size {size:?} and stride {stride:?} differ in rank"
                    ));
                }
                let (elem, elem_name) = if name == "_rebuild_tensor_v3" {
                    match self.objs.get(arg(6)?) {
                        Some(Obj::Global(_, d)) => (Elem::from_dtype(d), d.clone()),
                        _ => return Err(format!("{ctx}: the dtype argument is not a torch dtype")),
                    }
                } else {
                    match storage.elem {
                        Some(e) => (e, storage.type_name.clone()),
                        None => (Elem::Other, storage.type_name.clone()),
                    }
                };
                Ok(Obj::Tensor(Box::new(TensorSpec {
                    key: storage.key.clone(),
                    elem,
                    elem_name,
                    offset,
                    size,
                    stride,
                })))
            }
            // nn.Parameter wraps a tensor; devices are irrelevant here.
            (
                "torch._utils",
                "_rebuild_parameter"
                | "_rebuild_parameter_with_state"
                | "_rebuild_device_tensor_from_cpu_tensor",
            ) => match self.objs.get(arg(0)?) {
                Some(Obj::Tensor(t)) => Ok(Obj::Tensor(t.clone())),
                _ => Ok(Obj::Opaque(format!("{module}.{name}"))),
            },
            // Tensor subclasses: `_rebuild_from_type_v2(func, new_type, args, state)`.
            ("torch._tensor", "_rebuild_from_type_v2" | "_rebuild_from_type") if depth < 8 => {
                self.call(arg(0)?, arg(2)?, depth + 1)
            }
            _ => Ok(Obj::Opaque(format!("{module}.{name}"))),
        }
    }

    fn step(&mut self) -> VmResult<bool> {
        let at = self.pos;
        let op = self.u8()?;
        match op {
            0x80 => {
                let v = self.u8()?; // PROTO
                if v > 5 {
                    return Err(format!("unsupported pickle protocol {v}"));
                }
            }
            0x95 => {
                self.u64()?; // FRAME: the length is only a read-ahead hint
            }
            b'.' => return Ok(false), // STOP
            b'(' => self.marks.push(self.stack.len()),
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let t = self.top()?;
                self.stack.push(t);
            }
            b'N' => self.push(Obj::None),
            0x88 => self.push(Obj::Bool(true)),
            0x89 => self.push(Obj::Bool(false)),
            b'J' => {
                let v = i32::from_le_bytes(self.arr()?);
                self.push(Obj::Int(v.into()))
            }
            b'K' => {
                let v = self.u8()?;
                self.push(Obj::Int(v.into()))
            }
            b'M' => {
                let v = u16::from_le_bytes(self.arr()?);
                self.push(Obj::Int(v.into()))
            }
            0x8a | 0x8b => {
                // LONG1 / LONG4: little-endian two's complement of n bytes.
                let n = if op == 0x8a {
                    usize::from(self.u8()?)
                } else {
                    let n = i32::from_le_bytes(self.arr()?);
                    usize::try_from(n).map_err(|_| "negative LONG4 length".to_string())?
                };
                let bytes = self.take(n)?;
                let ext = if n >= 8 && bytes[7] & 0x80 != 0 {
                    0xff
                } else {
                    0
                };
                if n > 8 && !bytes[8..].iter().all(|&b| b == ext) {
                    return Err(format!(
                        "integer of {n} bytes at offset {at} does not fit in 64 bits"
                    ));
                }
                let mut a = [0u8; 8];
                let k = n.min(8);
                a[..k].copy_from_slice(&bytes[..k]);
                if k > 0 && k < 8 && bytes[k - 1] & 0x80 != 0 {
                    a[k..].fill(0xff);
                }
                self.push(Obj::Int(i64::from_le_bytes(a)))
            }
            b'G' => {
                self.take(8)?; // BINFLOAT: the value is never needed
                self.push(Obj::Float)
            }
            b'X' | 0x8c | 0x8d | b'U' | b'T' => {
                let n = match op {
                    b'X' => self.u32()? as usize,
                    0x8d => self.len_u64()?,
                    b'T' => {
                        let n = i32::from_le_bytes(self.arr()?);
                        usize::try_from(n).map_err(|_| "negative string length".to_string())?
                    }
                    _ => usize::from(self.u8()?),
                };
                let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                self.push(Obj::Str(s))
            }
            b'C' | b'B' | 0x8e => {
                let n = match op {
                    b'C' => usize::from(self.u8()?),
                    b'B' => self.u32()? as usize,
                    _ => self.len_u64()?,
                };
                self.take(n)?;
                self.push(Obj::Bytes)
            }
            b'}' => self.push(Obj::Dict(Vec::new())),
            b']' => self.push(Obj::List(Vec::new())),
            b')' => self.push(Obj::Tuple(Vec::new())),
            b'd' => {
                let items = self.pop_mark()?;
                let pairs = items.chunks_exact(2).map(|p| (p[0], p[1])).collect();
                self.push(Obj::Dict(pairs))
            }
            b'l' => {
                let items = self.pop_mark()?;
                self.push(Obj::List(items))
            }
            b't' => {
                let items = self.pop_mark()?;
                self.push(Obj::Tuple(items))
            }
            0x85..=0x87 => {
                let n = usize::from(op - 0x84);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                self.push(Obj::Tuple(items))
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.push(Obj::Global(module, name))
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (self.str_of(module), self.str_of(name)) {
                    (Some(m), Some(n)) => {
                        let g = Obj::Global(m.to_string(), n.to_string());
                        self.push(g)
                    }
                    _ => {
                        return Err(format!(
                            "STACK_GLOBAL at offset {at} with non-string operands"
                        ))
                    }
                }
            }
            b'R' | 0x81 => {
                // REDUCE (callable, args) / NEWOBJ (cls, args)
                let args = self.pop()?;
                let func = self.pop()?;
                let obj = self.call(func, args, 0)?;
                self.push(obj)
            }
            0x92 => {
                // NEWOBJ_EX (cls, args, kwargs)
                self.pop()?;
                let args = self.pop()?;
                let func = self.pop()?;
                let obj = self.call(func, args, 0)?;
                self.push(obj)
            }
            b'b' => {
                // BUILD: object state (e.g. a state dict's `_metadata`) is not needed.
                self.pop()?;
                self.top()?;
            }
            b'Q' => {
                let pid = self.pop()?;
                let obj = self.persistent_load(pid)?;
                self.push(obj)
            }
            b'q' => {
                let k = self.u8()?;
                self.memo_put(k.into())?
            }
            b'r' => {
                let k = self.u32()?;
                self.memo_put(k.into())?
            }
            0x94 => {
                let k = self.memo.len() as u64;
                self.memo_put(k)?
            }
            b'h' => {
                let k = self.u8()?;
                self.memo_get(k.into())?
            }
            b'j' => {
                let k = self.u32()?;
                self.memo_get(k.into())?
            }
            b'p' | b'g' => {
                let line = self.line()?;
                let k: u64 = line
                    .trim()
                    .parse()
                    .map_err(|_| format!("bad memo key `{line}`"))?;
                if op == b'p' {
                    self.memo_put(k)?
                } else {
                    self.memo_get(k)?
                }
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    vec![k, v]
                } else {
                    self.pop_mark()?
                };
                let target = self.top()?;
                match self.objs.get_mut(target) {
                    Some(Obj::Dict(d)) => d.extend(items.chunks_exact(2).map(|p| (p[0], p[1]))),
                    Some(Obj::Opaque(_)) => {} // an object we do not model: drop its items
                    _ => return Err(format!("SETITEM on a non-dict at offset {at}")),
                }
            }
            b'a' | b'e' => {
                let items = if op == b'a' {
                    vec![self.pop()?]
                } else {
                    self.pop_mark()?
                };
                let target = self.top()?;
                match self.objs.get_mut(target) {
                    Some(Obj::List(l)) => l.extend(items),
                    Some(Obj::Opaque(_)) => {}
                    _ => return Err(format!("APPEND on a non-list at offset {at}")),
                }
            }
            _ => {
                return Err(format!(
                    "unknown or unsupported pickle opcode 0x{op:02x} at offset {at}"
                ))
            }
        }
        Ok(true)
    }
}

impl Vm {
    /// Runs a pickle to its STOP opcode.
    pub(super) fn run(data: &[u8]) -> VmResult<Vm> {
        let mut ex = Exec {
            data,
            pos: 0,
            objs: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
        };
        let mut ops = 0usize;
        while ex.step()? {
            ops += 1;
            if ops > MAX_OPCODES {
                return Err(format!(
                    "more than {MAX_OPCODES} opcodes, far more than any BERT state dict needs"
                ));
            }
        }
        let root = ex.stack.pop().ok_or("empty pickle")?;
        Ok(Vm {
            objs: ex.objs,
            root,
            len: data.len(),
        })
    }

    /// Flattens the root dict into `(name, leaf)` pairs, nested dicts joined with `.`.
    pub(super) fn state_dict(&self) -> VmResult<Vec<(String, Leaf)>> {
        match self.objs.get(self.root) {
            Some(Obj::Dict(_)) => {}
            Some(other) => {
                let what = match other {
                    Obj::Opaque(name) => {
                        format!("a `{name}` object (save `model.state_dict()`, not the model)")
                    }
                    Obj::List(_) => "a list".into(),
                    Obj::Tuple(_) => "a tuple".into(),
                    Obj::Tensor(_) => "a single tensor".into(),
                    _ => "a scalar".into(),
                };
                return Err(format!("expected a dict of tensors, found {what}"));
            }
            None => return Err("empty pickle".into()),
        }
        let mut out = Vec::new();
        let mut budget = self.len.saturating_add(16);
        let mut tensors = 0usize;
        self.flatten(self.root, "", 0, &mut budget, &mut tensors, &mut out)?;
        if tensors == 0 {
            return Err("the dict holds no tensors".into());
        }
        Ok(out)
    }

    fn flatten(
        &self,
        dict: Id,
        prefix: &str,
        depth: usize,
        budget: &mut usize,
        tensors: &mut usize,
        out: &mut Vec<(String, Leaf)>,
    ) -> VmResult<()> {
        if depth > 32 {
            return Err("dicts nested more than 32 deep".into());
        }
        let Some(Obj::Dict(pairs)) = self.objs.get(dict) else {
            return Ok(());
        };
        for &(k, v) in pairs {
            *budget = budget
                .checked_sub(1)
                .ok_or("dicts shared too often (cyclic?)")?;
            let key = match self.objs.get(k) {
                Some(Obj::Str(s)) => s.clone(),
                Some(Obj::Int(i)) => i.to_string(),
                _ => continue,
            };
            let name = format!("{prefix}{key}");
            match self.objs.get(v) {
                Some(Obj::Tensor(t)) => {
                    *tensors += 1;
                    out.push((name, Leaf::Tensor((**t).clone())));
                }
                Some(Obj::Dict(_)) => {
                    self.flatten(v, &format!("{name}."), depth + 1, budget, tensors, out)?
                }
                Some(Obj::Opaque(what)) if what.starts_with("torch.") => {
                    *tensors += 1;
                    out.push((name, Leaf::Unsupported(what.clone())));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm_err(pickle: &[u8]) -> String {
        match Vm::run(pickle).and_then(|vm| vm.state_dict().map(|_| ())) {
            Ok(()) => panic!("pickle accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn pickle_errors() {
        assert!(vm_err(b"\x80\x02\xff.").contains("opcode 0xff"));
        assert!(vm_err(b"\x80\x02}").contains("truncated"));
        assert!(vm_err(b"\x80\x02}q\x00").contains("truncated"));
        assert!(vm_err(b"\x80\x02X\xff\xff\xff\xffab.").contains("truncated"));
        assert!(vm_err(b"\x80\x02h\x05.").contains("memo key 5"));
        assert!(vm_err(b"\x80\x02s.").contains("underflow"));
        assert!(vm_err(b"\x80\x02].").contains("a list"));
        assert!(vm_err(b"\x80\x02}.").contains("no tensors"));
        assert!(vm_err(b"\x80\x02K\x01K\x02s.").contains("underflow"));
        assert!(vm_err(b"\x80\x02K\x01}K\x01K\x02s0.").contains("scalar"));
        assert!(
            vm_err(b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n)R.").contains("missing argument")
        );
        assert!(vm_err(b"\x80\x02ctransformers\nBertModel\n)\x81}b.").contains("state_dict"));
        // Deep nesting and self-reference do not overflow the stack.
        let mut deep = b"\x80\x02}q\x00".to_vec();
        for _ in 0..100 {
            deep.extend(b"X\x01\x00\x00\x00a}");
        }
        deep.extend(std::iter::repeat_n(b's', 100));
        deep.push(b'.');
        assert!(vm_err(&deep).contains("nested"));
        let cyclic = b"\x80\x02}q\x00X\x01\x00\x00\x00ah\x00s.";
        assert!(vm_err(cyclic).contains("nested") || vm_err(cyclic).contains("cyclic"));
        let mut tuples = b"\x80\x02)".to_vec();
        tuples.extend(std::iter::repeat_n(0x85, 200_000));
        tuples.push(b'.');
        assert!(vm_err(&tuples).contains("tuple"));
        // A pickle may run only so many opcodes, whatever they do: its memory stays bounded.
        let mut empties = b"\x80\x02".to_vec();
        empties.extend(std::iter::repeat_n(b')', MAX_OPCODES + 1));
        empties.push(b'.');
        assert!(vm_err(&empties).contains("opcodes"), "{}", vm_err(&empties));
    }

    #[test]
    fn long_integers() {
        let vm = Vm::run(b"\x80\x02\x8a\x02\xff\x7f.").unwrap();
        assert!(matches!(vm.objs[vm.root], Obj::Int(0x7fff)));
        let vm = Vm::run(b"\x80\x02\x8a\x01\xff.").unwrap();
        assert!(matches!(vm.objs[vm.root], Obj::Int(-1)));
        let vm = Vm::run(b"\x80\x02\x8a\x00.").unwrap();
        assert!(matches!(vm.objs[vm.root], Obj::Int(0)));
        let vm = Vm::run(b"\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x01\x00.").unwrap();
        assert!(matches!(vm.objs[vm.root], Obj::Int(0x0100_0000_0000_0000)));
        assert!(Vm::run(b"\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.").is_err());
    }
}

"""Calls across the sandbox: arguments and results as data, setup objects by name, gradients
through the call.

Two :class:`Peer` objects, one in the trusted process and one in the sandbox, talk over a Unix
socket. A message is a JSON header and raw byte buffers (a tensor is its dtype, shape and bytes,
read back with ``torch.frombuffer``): nothing is ever unpickled, so what the sandbox sends can only
be numbers, strings, tuples, lists, dicts, tensors, NumPy arrays of plain dtypes, torch dtypes,
devices and sizes, ``torch.return_types`` tuples, or a *handle* (a callable that stays in the
process that owns it; calling it is a request back). Objects of the notebook's setup (the model,
...) cross by name: each side has its own. A module that is not a setup object (a check's
``copy.deepcopy(model).double()``) crosses as the name of a setup module of the same class with
its state (parameters and buffers).

A call whose tensor arguments require gradients keeps its graph in the process that ran it;
:class:`_Attach` links the caller's result to the arguments, and its backward asks the other side
for the input gradients (``torch.autograd.grad`` there). Either side may call the other while it
serves a call (the sandbox's code calls a reference function of another exercise, which stays in
the trusted process): requests nest.
"""
from __future__ import annotations

import json
import socket
import struct
import traceback

# packages whose module classes may be rebuilt from data: none for now (torchvision's and the course's
# networks stay in the caller and are called back: rebuilding SqueezeNet gave gradients 0.8 % off in
# the sandbox, unexplained, and VGG16's 138 M parameters would cross at every call)
LIBRARIES: tuple = ()
MAX_MESSAGE = 1 << 30  # bytes: a larger message is refused (a submission cannot exhaust the grader)
_DTYPES = ("float16", "bfloat16", "float32", "float64", "complex64", "complex128", "uint8", "int8",
           "int16", "int32", "int64", "bool")
_NP_DTYPES = ("float16", "float32", "float64", "complex64", "complex128", "uint8", "int8", "int16",
              "int32", "int64", "uint16", "uint32", "uint64", "bool")
_ERRORS = ("NotImplementedError", "MemoryError", "TypeError", "ValueError", "RuntimeError", "IndexError",
           "KeyError", "AttributeError", "ZeroDivisionError", "NameError", "AssertionError",
           "RecursionError", "OverflowError", "StopIteration", "LookupError", "ArithmeticError")


class Closed(Exception):
    """The other side is gone (it crashed, was killed, or closed the socket)."""


class SandboxDied(Exception):
    """The sandbox process ended while the trusted side waited for it; ``args[0]`` says how."""


class RemoteError(Exception):
    """An exception the other side raised, of a type that does not cross by name."""


def _remote_exception(info: dict) -> BaseException:
    import builtins

    name, message = str(info.get("type", "Exception"))[:80], str(info.get("message", ""))[:2000]
    where = info.get("where")
    text = message + (f" [{where}]" if where else "")
    if info.get("unfinished"):
        from tp_utils.answers import UnfinishedExercise

        return UnfinishedExercise(text)
    if name in _ERRORS:
        return getattr(builtins, name)(text)
    return RemoteError(f"{name}: {text}")


def _student_where(err: BaseException) -> str | None:
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename.startswith("<submission")]
    if not frames:
        return None
    f = frames[-1]
    return f"{f.filename.strip('<>').replace('submission ', '')}, line {f.lineno}"


# ------------------------------------------------------------------------------ the wire

def _send(sock: socket.socket, header: dict, buffers: list[bytes]) -> None:
    head = json.dumps(header, allow_nan=True).encode()
    parts = [struct.pack("<II", len(head), len(buffers)), head]
    for b in buffers:
        parts += [struct.pack("<Q", len(b)), b]
    sock.sendall(b"".join(parts))


def _recv_exact(sock: socket.socket, n: int) -> bytearray:
    buf, view, got = bytearray(n), None, 0
    view = memoryview(buf)
    while got < n:
        k = sock.recv_into(view[got:], min(n - got, 1 << 22))
        if not k:
            raise Closed("the other side closed the connection")
        got += k
    return buf  # one copy of a large tensor, not three


def _recv(sock: socket.socket) -> tuple[dict, list[bytes]]:
    head_len, n_buf = struct.unpack("<II", _recv_exact(sock, 8))
    if head_len > MAX_MESSAGE or n_buf > 100_000:
        raise Closed("a message over the size limit")
    header = json.loads(_recv_exact(sock, head_len))
    if not isinstance(header, dict):
        raise Closed("a malformed message")
    buffers, total = [], head_len
    for _ in range(n_buf):
        (size,) = struct.unpack("<Q", _recv_exact(sock, 8))
        total += size
        if total > MAX_MESSAGE:
            raise Closed("a message over the size limit")
        buffers.append(_recv_exact(sock, size))
    return header, buffers


# ------------------------------------------------------------------------------ values as data

def describe_signature(codec: "Codec", fn) -> list | None:
    """A function's parameters as data: ``[name, kind, has_default, default]`` each."""
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    out = []
    for p in sig.parameters.values():
        default, has = None, p.default is not inspect.Parameter.empty
        if has:
            try:
                default = codec.encode(p.default, [], None)
            except TypeError:
                has = False
            if isinstance(default, dict) and ("T" in default or "N" in default or "G" in default or "handle" in default):
                has, default = False, None  # only plain defaults
        out.append([p.name, int(p.kind), has, default])
    return out


def make_signature(codec: "Codec", spec):
    import inspect

    if not isinstance(spec, list):
        return None
    params = []
    try:
        for name, kind, has, default in spec:
            params.append(inspect.Parameter(str(name), inspect._ParameterKind(int(kind)),
                                            default=codec.decode(default, []) if has else inspect.Parameter.empty))
        return inspect.Signature(params)
    except (ValueError, TypeError):
        return None


class Remote:
    """A callable that lives on the other side (an exercise function, a callback)."""

    def __init__(self, peer: "Peer", target, name: str = "") -> None:
        self._peer, self._target, self.__name__ = peer, target, name or str(target)
        self.__qualname__ = self.__name__

    def __call__(self, *args, **kwargs):
        return self._peer.call(self._target, args, kwargs)

    def __repr__(self) -> str:
        return f"<function {self.__name__} (in the sandbox)>"


class Codec:
    """Encodes values into (JSON, buffers) and back; ``names`` are the setup objects that cross
    by name (``{name: object}`` of this side)."""

    def __init__(self, peer: "Peer", names: dict | None = None) -> None:
        self.peer, self.names = peer, names if names is not None else {}
        self.generators: list = []  # the torch.Generator objects of the current call's arguments
        self.classes: dict = {}     # module classes of the setup, by name (rebuilt from data)
        self.sent: dict = {}        # modules sent by structure (key -> module), not sent again
        self.received: dict = {}    # modules received by structure (key -> rebuilt module)

    def _by_identity(self, obj):
        for k, v in self.names.items():
            if v is obj:
                return k
        return None

    def encode(self, obj, buffers: list, tensors: list | None = None, depth: int = 0):
        import numpy as np
        import torch

        if depth > 50:
            raise ValueError("a value nested too deeply to cross the sandbox")
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, (int, float)) and type(obj) in (int, float):
            return obj
        if isinstance(obj, (np.integer, np.floating, np.bool_)):
            return obj.item()
        if isinstance(obj, torch.Tensor):
            t = obj.detach()
            if t.is_sparse or t.layout != torch.strided:
                t = t.to_dense()
            dtype = str(t.dtype).replace("torch.", "")
            if dtype not in _DTYPES:
                raise TypeError(f"a tensor of dtype {dtype} cannot cross the sandbox")
            flat = t.cpu().contiguous().reshape(-1)
            buffers.append(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
            if tensors is not None:
                tensors.append(obj)
            return {"T": len(buffers) - 1, "dtype": dtype, "shape": list(t.shape),
                    "rg": bool(obj.requires_grad)}
        if isinstance(obj, np.ndarray):
            if obj.dtype.name not in _NP_DTYPES:
                raise TypeError(f"an array of dtype {obj.dtype} cannot cross the sandbox")
            buffers.append(np.ascontiguousarray(obj).tobytes())
            return {"N": len(buffers) - 1, "dtype": obj.dtype.name, "shape": list(obj.shape)}
        if isinstance(obj, torch.Generator):  # crosses as its state; the callee's use comes back
            buffers.append(obj.get_state().numpy().tobytes())
            self.generators.append(obj)
            return {"G": len(buffers) - 1}
        if isinstance(obj, torch.dtype):
            return {"dtype_": str(obj).replace("torch.", "")}
        if isinstance(obj, torch.device):
            return {"device": str(obj)}
        if isinstance(obj, torch.Size):
            return {"size": [int(s) for s in obj]}
        name = self._by_identity(obj)
        if name is not None:
            return {"ref": name}
        mod = type(obj).__module__
        import dataclasses

        if dataclasses.is_dataclass(obj) and not isinstance(obj, type) and mod.startswith("tp_utils."):
            return {"dc": f"{mod}:{type(obj).__qualname__}",  # a record of the course's library
                    "fields": {f.name: self.encode(getattr(obj, f.name), buffers, tensors, depth + 1)
                               for f in dataclasses.fields(obj)}}
        if mod == "torch.return_types":
            return {"rt": type(obj).__name__, "items": [self.encode(v, buffers, tensors, depth + 1) for v in obj]}
        if isinstance(obj, tuple):
            return {"tuple": [self.encode(v, buffers, tensors, depth + 1) for v in obj]}
        if isinstance(obj, list):
            return [self.encode(v, buffers, tensors, depth + 1) for v in obj]
        if isinstance(obj, dict):
            return {"dict": [[self.encode(k, buffers, None, depth + 1), self.encode(v, buffers, tensors, depth + 1)]
                             for k, v in obj.items()]}
        if isinstance(obj, torch.nn.Module):
            shapes = [(k, tuple(t.shape)) for k, t in obj.state_dict().items()]
            like = next((k for k, v in self.names.items() if type(v) is type(obj)
                         and isinstance(v, torch.nn.Module)
                         and [(k2, tuple(t.shape)) for k2, t in v.state_dict().items()] == shapes), None)
            if like is None:
                key = f"{id(obj)}:" + ",".join(str(t._version) for t in obj.state_dict().values())
                if key in self.sent:  # the same module, unchanged since: the other side has it
                    return {"cached": key}
                struct = self._structure(obj, buffers, depth)
                if struct is not None:  # torch.nn layers, or classes of the setup: rebuilt there
                    self.sent[key] = obj  # (kept alive, so that its id is not reused)
                    return {"struct": struct, "key": key}
                return {"handle": self.peer.register(obj), "name": type(obj).__name__}  # called back
            state = {k: self.encode(v, buffers, None, depth + 1) for k, v in obj.state_dict().items()}
            grads = {k: bool(p.requires_grad) for k, p in obj.named_parameters()}
            return {"module": like, "state": state, "requires_grad": grads, "training": bool(obj.training)}
        if callable(obj):
            return {"handle": self.peer.register(obj), "name": str(getattr(obj, "__name__", "function"))[:80]}
        raise TypeError(f"a {type(obj).__name__} cannot cross the sandbox (only numbers, strings, tuples, "
                        "lists, dicts, tensors and arrays do)")

    def _class_name(self, cls) -> str | None:
        import torch

        if getattr(torch.nn, cls.__name__, None) is cls:
            return "torch.nn." + cls.__name__
        if self.classes.get(cls.__name__) is cls:
            return "setup:" + cls.__name__
        if cls.__module__.startswith(LIBRARIES) and "." not in cls.__qualname__:
            return f"{cls.__module__}:{cls.__qualname__}"  # torchvision's models, tp_utils's networks
        return None

    def _structure(self, m, buffers: list, depth: int):
        """A module as data: its class (a torch.nn layer or a class of the setup), its plain
        attributes, parameters, buffers and children; None when a class is neither."""
        name = self._class_name(type(m))
        if name is None or depth > 40:
            return None
        attrs = {}
        for k, v in m.__dict__.items():
            if k in ("_parameters", "_buffers", "_modules", "training") or "hook" in k or k.startswith("_state_dict") \
                    or k.startswith("_load_state_dict") or k == "_non_persistent_buffers_set":
                continue
            if v is None or isinstance(v, (bool, int, float, str)) or (
                    isinstance(v, (tuple, list)) and all(isinstance(x, (bool, int, float, str)) or x is None for x in v)):
                attrs[k] = self.encode(v, buffers, None, depth + 1)
        children = {}
        for k, child in m._modules.items():
            if child is None:
                continue
            c = self._structure(child, buffers, depth + 1)
            if c is None:
                return None
            children[k] = c
        params = {k: None if p is None else [self.encode(p.detach(), buffers), bool(p.requires_grad)]
                  for k, p in m._parameters.items()}
        bufs = {k: None if b is None else self.encode(b, buffers) for k, b in m._buffers.items()}
        return {"cls": name, "attrs": attrs, "params": params, "buffers": bufs, "children": children,
                "training": bool(m.training)}

    def _rebuild(self, d: dict, buffers: list, depth: int = 0):
        import torch

        if depth > 40:
            raise TypeError("a module nested too deeply")
        name = str(d.get("cls", ""))
        if name.startswith("torch.nn."):
            cls = getattr(torch.nn, name[len("torch.nn."):], None)
        elif name.startswith("setup:"):
            cls = self.classes.get(name[len("setup:"):])
        elif ":" in name and name.startswith(LIBRARIES) and "." not in name.partition(":")[2]:
            import importlib

            mod, _, qual = name.partition(":")
            cls = getattr(importlib.import_module(mod), qual, None)
        else:
            cls = None
        if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
            raise TypeError(f"no module class {name!r} here")
        m = cls.__new__(cls)
        torch.nn.Module.__init__(m)
        for k, v in d.get("attrs", {}).items():
            if k not in m.__dict__ or not k.startswith("__"):
                m.__dict__[str(k)] = self.decode(v, buffers)
        for k, pr in d.get("params", {}).items():
            m._parameters[str(k)] = None if pr is None else torch.nn.Parameter(
                self.decode(pr[0], buffers), requires_grad=bool(pr[1]))
        for k, t in d.get("buffers", {}).items():
            m._buffers[str(k)] = None if t is None else self.decode(t, buffers)
        for k, c in d.get("children", {}).items():
            m._modules[str(k)] = self._rebuild(c, buffers, depth + 1)
        m.train(bool(d.get("training")))
        return m

    def decode(self, obj, buffers: list, tensors: list | None = None, trusted_names: bool = True):
        import numpy as np
        import torch

        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        if isinstance(obj, list):
            return [self.decode(v, buffers, tensors) for v in obj]
        if not isinstance(obj, dict):
            raise TypeError("a malformed value")
        if "T" in obj:
            dtype = obj["dtype"]
            if dtype not in _DTYPES:
                raise TypeError(f"dtype {dtype!r} refused")
            shape = [int(s) for s in obj["shape"]]
            raw = buffers[int(obj["T"])]
            t = torch.frombuffer(raw if isinstance(raw, bytearray) else bytearray(raw), dtype=torch.uint8) \
                if raw else torch.empty(0, dtype=torch.uint8)
            t = t.view(getattr(torch, dtype)).reshape(shape)
            if obj.get("rg") and (t.is_floating_point() or t.is_complex()):
                t.requires_grad_(True)
            if tensors is not None:
                tensors.append(t)
            return t
        if "N" in obj:
            if obj["dtype"] not in _NP_DTYPES:
                raise TypeError(f"dtype {obj['dtype']!r} refused")
            return np.frombuffer(buffers[int(obj["N"])], dtype=np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()
        if "G" in obj:
            g = torch.Generator()
            g.set_state(torch.frombuffer(bytearray(buffers[int(obj["G"])]), dtype=torch.uint8).clone())
            self.generators.append(g)
            return g
        if "dtype_" in obj:
            if obj["dtype_"] not in _DTYPES:
                raise TypeError("dtype refused")
            return getattr(torch, obj["dtype_"])
        if "device" in obj:
            return torch.device(str(obj["device"]))
        if "size" in obj:
            return torch.Size([int(s) for s in obj["size"]])
        if "tuple" in obj:
            return tuple(self.decode(v, buffers, tensors) for v in obj["tuple"])
        if "rt" in obj:
            cls = getattr(torch.return_types, str(obj["rt"]), None)
            items = tuple(self.decode(v, buffers, tensors) for v in obj["items"])
            return cls(items) if isinstance(cls, type) else items
        if "dict" in obj:
            return {self.decode(k, buffers): self.decode(v, buffers, tensors) for k, v in obj["dict"]}
        if "ref" in obj:
            if obj["ref"] not in self.names:
                raise TypeError(f"no setup object {obj['ref']!r} here")
            return self.names[obj["ref"]]
        if "module" in obj:
            import copy

            base = self.names.get(obj["module"])
            if not isinstance(base, torch.nn.Module):
                raise TypeError(f"no setup module {obj['module']!r} here")
            m = copy.deepcopy(base)
            state = {k: self.decode(v, buffers) for k, v in obj["state"].items()}
            dtypes = {v.dtype for v in state.values() if v.is_floating_point()}
            if len(dtypes) == 1:
                m.to(dtypes.pop())
            m.load_state_dict(state)
            for k, p in m.named_parameters():
                p.requires_grad_(bool(obj.get("requires_grad", {}).get(k, False)))
            m.train(bool(obj.get("training")))
            return m
        if "dc" in obj:
            import dataclasses
            import importlib

            mod, _, qual = str(obj["dc"]).partition(":")
            if not mod.startswith("tp_utils.") or "." in qual:
                raise TypeError(f"class {obj['dc']!r} refused")
            cls = getattr(importlib.import_module(mod), qual, None)
            if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
                raise TypeError(f"class {obj['dc']!r} refused")
            names = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: self.decode(v, buffers, tensors) for k, v in obj["fields"].items() if k in names})
        if "struct" in obj:
            m = self._rebuild(obj["struct"], buffers)
            if len(self.received) > 16:
                self.received.pop(next(iter(self.received)))
            self.received[str(obj.get("key"))] = m
            return m
        if "cached" in obj:
            if str(obj["cached"]) not in self.received:
                raise TypeError("a module this side never received")
            return self.received[str(obj["cached"])]
        if "handle" in obj:
            return Remote(self.peer, {"handle": int(obj["handle"])}, str(obj.get("name", "function")))
        raise TypeError("a malformed value")


# ------------------------------------------------------------------------------ the peers

class _Attach:
    """Links a remote call's result tensors to its argument tensors in the caller's graph."""

    _fn = None

    @classmethod
    def function(cls):
        if cls._fn is None:
            import torch

            class Attach(torch.autograd.Function):
                @staticmethod
                def forward(ctx, state, *inputs):
                    ctx.state = state
                    outs = tuple(t.clone() for t in state["results"])
                    ctx.mark_non_differentiable(*[o for o, rg in zip(outs, state["rg"]) if not rg])
                    return outs

                @staticmethod
                def backward(ctx, *grads):
                    state = ctx.state
                    got = state["peer"].backward(state["call"], grads, state["n_inputs"])
                    return (None, *got)

            cls._fn = Attach
        return cls._fn


class Peer:
    """One end of the connection: makes calls, serves the other side's calls while it waits."""

    def __init__(self, sock: socket.socket, names: dict | None = None, functions: dict | None = None,
                 on_status=None) -> None:
        self.sock = sock
        self.codec = Codec(self, names)
        self.functions = functions if functions is not None else {}  # name -> callable served here
        self.handles: dict[int, object] = {}
        self.graphs: dict[int, tuple] = {}
        self.next_id = 1
        self.on_status = on_status  # a message that is neither request nor reply (the sandbox's end)
        self.door = None  # serves "earlier:NAME" (tp_utils.answers.earlier) when set

    def register(self, obj) -> int:
        for k, v in self.handles.items():
            if v is obj:
                return k
        k = len(self.handles) + 1
        self.handles[k] = obj
        return k

    # -- the caller's side
    def call(self, target, args, kwargs):
        import torch

        buffers, tensors = [], []
        self.codec.generators = []
        payload = {"args": self.codec.encode(tuple(args), buffers, tensors),
                   "kwargs": self.codec.encode(dict(kwargs), buffers, tensors)}
        want_grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        call_id = self.next_id
        self.next_id += 1
        header = {"op": "call", "id": call_id, "target": target, "grad": bool(want_grad),
                  "grad_enabled": torch.is_grad_enabled(), **payload}
        generators = self.codec.generators
        reply, rbuf = self._request(header, buffers)
        for k, g in enumerate(generators):  # the generators advance as the callee used them
            states = reply.get("generators") or []
            if k < len(states) and isinstance(states[k], int) and 0 <= states[k] < len(rbuf):
                g.set_state(torch.frombuffer(bytearray(rbuf[states[k]]), dtype=torch.uint8).clone())
        results = []
        value = self.codec.decode(reply["result"], rbuf, results)
        for k, upd in (reply.get("inplace") or {}).items():  # the callee changed an argument in place
            k = int(k)
            if 0 <= k < len(tensors):
                new = self.codec.decode(upd, rbuf)
                if isinstance(new, torch.Tensor) and new.shape == tensors[k].shape:
                    with torch.no_grad():
                        tensors[k].copy_(new)
        for k, g in (reply.get("arg_grads") or {}).items():  # .grad the callee left on an argument
            k = int(k)
            if 0 <= k < len(tensors) and tensors[k].is_leaf:
                g = self.codec.decode(g, rbuf)
                if isinstance(g, torch.Tensor) and g.shape == tensors[k].shape:
                    tensors[k].grad = g.to(tensors[k].dtype)
        if want_grad and results and any(reply.get("result_rg") or []):
            rg = list(reply.get("result_rg"))[:len(results)]
            rg += [False] * (len(results) - len(rg))
            state = {"peer": self, "call": call_id, "results": [r.detach() for r in results],
                     "rg": [bool(x) for x in rg], "n_inputs": len(tensors)}
            linked = list(_Attach.function().apply(state, *tensors))
            value = _replace_tensors(value, iter(linked))
        return value

    def backward(self, call_id: int, grads, n_inputs: int):
        import torch

        buffers = []
        enc = self.codec.encode(tuple(grads), buffers)
        reply, rbuf = self._request({"op": "backward", "id": self.next_id, "call": call_id, "grads": enc}, buffers)
        self.next_id += 1
        got = list(self.codec.decode(reply["grads"], rbuf))
        got += [None] * (n_inputs - len(got))
        return [g if isinstance(g, torch.Tensor) else None for g in got[:n_inputs]]

    def _request(self, header: dict, buffers: list):
        try:
            _send(self.sock, header, buffers)
        except OSError as err:
            raise Closed(f"the other side is gone ({err})") from None
        while True:
            msg, buf = _recv(self.sock)
            if msg.get("op") == "reply" and msg.get("id") == header["id"]:
                if "error" in msg:
                    raise _remote_exception(msg["error"])
                return msg, buf
            if msg.get("op") in ("call", "backward"):
                self._serve_one(msg, buf)
            elif msg.get("op") == "status" and self.on_status is not None:
                self.on_status(msg)
            else:
                raise Closed("an unexpected message")

    # -- the callee's side
    def serve_forever(self) -> None:
        while True:
            try:
                msg, buf = _recv(self.sock)
            except Closed:
                return
            if msg.get("op") in ("call", "backward"):
                self._serve_one(msg, buf)

    def _serve_one(self, msg: dict, buf: list) -> None:
        import torch

        try:
            if msg["op"] == "call":
                header, out = self._do_call(msg, buf)
            else:
                header, out = self._do_backward(msg, buf)
        except BaseException as err:  # noqa: B036 - the caller gets the error
            if isinstance(err, (KeyboardInterrupt, Closed)):
                raise
            info = {"type": type(err).__name__, "message": " ".join(str(err).split())[:2000],
                    "where": _student_where(err)}
            try:
                from tp_utils.answers import UnfinishedExercise

                info["unfinished"] = isinstance(err, UnfinishedExercise)
            except ImportError:
                pass
            header, out = {"error": info}, []
        del torch
        _send(self.sock, {"op": "reply", "id": msg.get("id"), **header}, out)

    def _resolve(self, target):
        if isinstance(target, dict) and "handle" in target:
            return self.handles[int(target["handle"])]
        if isinstance(target, str) and target.startswith("earlier:") and self.door is not None:
            return self.door(target[len("earlier:"):])
        if isinstance(target, str) and self.functions.get(target) is not None:
            return self.functions[target]
        raise NameError(f"{target!r} cannot be called across the sandbox")

    def _do_call(self, msg: dict, buf: list):
        import torch

        fn = self._resolve(msg.get("target"))
        tensors = []
        self.codec.generators = []
        args = self.codec.decode(msg["args"], buf, tensors)
        kwargs = self.codec.decode(msg["kwargs"], buf, tensors)
        generators = self.codec.generators
        before = [t.detach().clone() for t in tensors]
        with torch.set_grad_enabled(bool(msg.get("grad_enabled", True))):
            value = fn(*args, **(kwargs or {}))
        out, results = [], []
        enc = self.codec.encode(value, out, results)
        header = {"result": enc, "result_rg": [bool(r.requires_grad) for r in results]}
        inplace, arg_grads = {}, {}
        for k, (t, b) in enumerate(zip(tensors, before)):
            if t.shape == b.shape and not torch.equal(t.detach(), b):
                inplace[k] = self.codec.encode(t.detach(), out)
            if t.grad is not None:
                arg_grads[k] = self.codec.encode(t.grad, out)
        header.update(inplace=inplace, arg_grads=arg_grads)
        header["generators"] = []
        for g in generators:
            out.append(g.get_state().numpy().tobytes())
            header["generators"].append(len(out) - 1)
        if msg.get("grad") and any(r.requires_grad for r in results):
            self.graphs[int(msg["id"])] = (tensors, results)
            if len(self.graphs) > 64:
                self.graphs.pop(next(iter(self.graphs)))
        return header, out

    def _do_backward(self, msg: dict, buf: list):
        import torch

        inputs, results = self.graphs.get(int(msg["call"]), (None, None))
        if inputs is None:
            raise RuntimeError("the graph of that call is gone (backward called twice?)")
        grads = self.codec.decode(msg["grads"], buf)
        pairs = [(r, g) for r, g in zip(results, grads) if r.requires_grad and isinstance(g, torch.Tensor)]
        wanted = [t for t in inputs if t.requires_grad]
        got = []
        if pairs and wanted:
            got = torch.autograd.grad([r for r, _ in pairs], wanted, [g.to(r.dtype) for r, g in pairs],
                                      allow_unused=True, retain_graph=True)
        it = iter(got)
        full = [next(it) if t.requires_grad else None for t in inputs]
        out = []
        return {"grads": self.codec.encode(tuple(full), out)}, out


def _replace_tensors(value, linked):
    import torch

    if isinstance(value, torch.Tensor):
        return next(linked)
    if type(value).__module__ == "torch.return_types":
        return type(value)(tuple(_replace_tensors(v, linked) for v in value))
    if isinstance(value, tuple):
        return tuple(_replace_tensors(v, linked) for v in value)
    if isinstance(value, list):
        return [_replace_tensors(v, linked) for v in value]
    if isinstance(value, dict):
        return {k: _replace_tensors(v, linked) for k, v in value.items()}
    return value

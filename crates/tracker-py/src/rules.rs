//! Rules whose pullbacks are Python callables: custom rules, hooks and checkpoints.
//!
//! A tape never holds a Python callable directly. The callables of the rules recorded in
//! one generation of a tape (see `Tape::generation`) hang on one
//! garbage-collector-visible object, a `TapeObjects`, that the tape refers to only
//! weakly. A handle holds the newest generation its value's backward pass can reach, and
//! that generation holds the older ones it reaches; a handle that reaches no rule holds
//! nothing. So a cycle through a pullback that captures tracked values is a cycle of
//! Python objects the collector can see and free, even while newer values live on.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple, PyWeakrefReference};
use pyo3::{PyTraverseError, PyVisit};
use tracker_core::{Arg, Error, Extern, Payload, Result, Tape, Tracked, Value};

use crate::convert::{arg_or_raise, array_value, output_to_py, to_numpy, to_numpy_scalar};
use crate::errors::IntoPyResult;
use crate::tracked::tracked_of;

/// The Python callables of the rules one generation of a tape recorded.
#[pyclass(weakref, module = "tracker._core")]
pub struct TapeObjects {
    callables: Vec<Option<Py<PyAny>>>,
    free: Vec<usize>,
    generation: u32,
    /// An older generation that values of this one reach (which may hold older ones).
    older: Option<Py<TapeObjects>>,
    /// The oldest generation reached through `older`.
    covers: u32,
}

#[pymethods]
impl TapeObjects {
    fn __traverse__(&self, visit: PyVisit<'_>) -> std::result::Result<(), PyTraverseError> {
        for callable in self.callables.iter().flatten() {
            visit.call(callable)?;
        }
        if let Some(older) = &self.older {
            visit.call(older)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.callables.clear();
        self.free.clear();
        self.older = None;
    }
}

/// The weak references a tape keeps to the `TapeObjects` of its generations, in
/// increasing generation.
struct Generations(Mutex<Entries>);

#[derive(Default)]
struct Entries {
    list: Vec<(u32, Py<PyWeakrefReference>)>,
    /// The length at which dead entries are next forgotten.
    prune_at: usize,
}

impl Generations {
    fn of(tape: &Tape) -> Option<Arc<Generations>> {
        tape.extension()?.downcast().ok()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn upgrade<'py>(py: Python<'py>, weak: &Py<PyWeakrefReference>) -> Option<Bound<'py, TapeObjects>> {
    weak.bind(py).upgrade().and_then(|o| o.cast_into().ok())
}

/// The live `TapeObjects` of `tape` with the newest generation in `range`.
fn newest_in<'py>(
    py: Python<'py>,
    tape: &Tape,
    range: std::ops::RangeInclusive<u32>,
) -> Option<Bound<'py, TapeObjects>> {
    let generations = Generations::of(tape)?;
    let entries = generations.entries();
    let end = entries.list.partition_point(|(g, _)| g <= range.end());
    entries
        .list
        .get(..end)?
        .iter()
        .rev()
        .take_while(|(g, _)| range.contains(g))
        .find_map(|(_, weak)| upgrade(py, weak))
}

/// What a handle of `t` holds: the newest generation of rules it reaches, linked to the
/// older generations it reaches, so none is freed while the handle lives.
pub fn objects_of(py: Python<'_>, t: &Tracked) -> Option<Py<TapeObjects>> {
    let (oldest, newest) = t.extern_reach()?;
    let tape = t.tape()?;
    let top = newest_in(py, tape, oldest..=newest)?;
    let mut path = vec![top.clone()];
    let mut current = top.clone();
    loop {
        let (at, covers, older) = {
            let c = current.borrow();
            (
                c.generation,
                c.covers,
                c.older.as_ref().map(|o| o.clone_ref(py)),
            )
        };
        if covers <= oldest || at == 0 {
            break;
        }
        let next = match older {
            Some(o) => o.into_bound(py),
            None => {
                let Some(below) = newest_in(py, tape, oldest..=at - 1) else {
                    break;
                };
                current.borrow_mut().older = Some(below.clone().unbind());
                below
            }
        };
        path.push(next.clone());
        current = next;
    }
    for o in &path {
        let mut o = o.borrow_mut();
        o.covers = o.covers.min(oldest);
    }
    Some(top.unbind())
}

/// Frees the callables of a tape whose arena was cleared: their nodes are gone.
pub fn tape_cleared(tape: &Tape) {
    Python::attach(|py| {
        let Some(generations) = Generations::of(tape) else {
            return;
        };
        let live: Vec<_> = std::mem::take(&mut generations.entries().list)
            .iter()
            .filter_map(|(_, weak)| upgrade(py, weak))
            .collect();
        for objects in live {
            // Taken out first and dropped after the borrow ends: dropping a closure may
            // run Python code.
            let old = {
                let mut objects = objects.borrow_mut();
                objects.free.clear();
                std::mem::take(&mut objects.callables)
            };
            drop(old);
        }
    });
}

/// The `TapeObjects` of the tape's current generation, made when it has none.
fn objects_for<'py>(py: Python<'py>, tape: &Tape) -> PyResult<Bound<'py, TapeObjects>> {
    let generation = tape.generation();
    if let Some(objects) = newest_in(py, tape, generation..=generation) {
        return Ok(objects);
    }
    let objects = Bound::new(
        py,
        TapeObjects {
            callables: Vec::new(),
            free: Vec::new(),
            generation,
            older: None,
            covers: generation,
        },
    )?;
    let weak = PyWeakrefReference::new(&objects)?.unbind();
    let generations = Generations::of(tape).unwrap_or_else(|| {
        let made = Arc::new(Generations(Mutex::new(Entries::default())));
        tape.set_extension(Some(made.clone()));
        made
    });
    let mut entries = generations.entries();
    // Dead generations are forgotten each time the list has doubled since.
    if entries.list.len() >= entries.prune_at {
        entries
            .list
            .retain(|(_, weak)| weak.bind(py).upgrade().is_some());
        entries.prune_at = (2 * entries.list.len()).max(16);
    }
    entries.list.push((generation, weak));
    Ok(objects)
}

/// Op names outlive any one rule: each distinct name is kept once.
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(&known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

/// A recorded rule whose pullback is the callable in `slot` of a tape's objects.
struct PythonRule {
    name: &'static str,
    /// Where the pullback is kept: set once the node is recorded.
    place: std::sync::OnceLock<(Py<PyWeakrefReference>, usize)>,
}

fn external(rule: &'static str, error: PyErr) -> Error {
    Error::External {
        rule,
        payload: Payload(Arc::new(error)),
    }
}

/// Runs `f` with recording on or off, restoring the setting after.
fn with_recording<T>(enabled: bool, f: impl FnOnce() -> T) -> T {
    let previous = tracker_core::set_grad_enabled(enabled);
    let out = f();
    tracker_core::set_grad_enabled(previous);
    out
}

impl PythonRule {
    fn callable(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let missing = || {
            pyo3::exceptions::PyRuntimeError::new_err(format!(
                "the pullback of `{}` was already freed (its tape was consumed or collected)",
                self.name
            ))
        };
        let (weak, slot) = self.place.get().ok_or_else(missing)?;
        let objects = weak.bind(py).upgrade().ok_or_else(missing)?;
        let objects = objects.cast_into::<TapeObjects>()?;
        let objects = objects.borrow();
        let callable = objects.callables.get(*slot).and_then(Option::as_ref);
        callable.map(|c| c.clone_ref(py)).ok_or_else(missing)
    }

    fn call(&self, py: Python<'_>, dy: Arg) -> PyResult<Vec<Option<Arg>>> {
        let callable = self.callable(py)?;
        let like = Some(dy.value().dtype());
        let result = match dy {
            // An eager sweep: the pullback computes on plain values.
            Arg::Value(v) => {
                let dy = if v.shape().is_empty() {
                    to_numpy_scalar(py, &v)?
                } else {
                    to_numpy(py, v)?
                };
                with_recording(false, || callable.call1(py, (dy,)))?
            }
            // A recording sweep: what the pullback computes from tracked values is
            // recorded, so its gradients are differentiable again.
            Arg::Tracked(t) => {
                let dy = output_to_py(py, tracker_core::Output::Tracked(t))?;
                with_recording(true, || callable.call1(py, (dy,)))?
            }
        };
        let result = result.bind(py);
        let grads: Vec<Bound<'_, PyAny>> = match result.cast::<PyTuple>() {
            Ok(t) => t.iter().collect(),
            Err(_) => match result.cast::<PyList>() {
                Ok(l) => l.iter().collect(),
                Err(_) => vec![result.clone()],
            },
        };
        grads
            .iter()
            .map(|g| {
                if g.is_none() {
                    Ok(None)
                } else {
                    arg_or_raise(g, like, self.name).map(Some)
                }
            })
            .collect()
    }
}

impl Extern for PythonRule {
    fn name(&self) -> &'static str {
        self.name
    }

    fn pullback(&self, dy: Arg) -> Result<Vec<Option<Arg>>> {
        Python::attach(|py| self.call(py, dy)).map_err(|e| external(self.name, e))
    }

    fn release(&self) {
        let Some((weak, slot)) = self.place.get() else {
            return;
        };
        Python::attach(|py| {
            if let Some(objects) = weak.bind(py).upgrade()
                && let Ok(objects) = objects.cast_into::<TapeObjects>()
            {
                let old = {
                    let mut objects = objects.borrow_mut();
                    let old = objects.callables.get_mut(*slot).and_then(Option::take);
                    if old.is_some() {
                        objects.free.push(*slot);
                    }
                    old
                };
                drop(old);
            }
        });
    }
}

/// Records one node for a rule computed outside the engine: `value` is its forward
/// value, `pullback(dy)` returns one gradient per argument (or None).
#[pyfunction]
pub fn record_rule(
    py: Python<'_>,
    name: &str,
    pullback: Py<PyAny>,
    args: &Bound<'_, PyTuple>,
    value: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let name = intern(name);
    let args = args
        .iter()
        .map(|a| arg_or_raise(&a, None, name))
        .collect::<PyResult<Vec<_>>>()?;
    let value: Value = match tracked_of(value) {
        Some(t) => t.value(),
        None => array_value(
            value,
            args.iter().find_map(|a| match a {
                Arg::Tracked(t) => Some(t.dtype()),
                Arg::Value(_) => None,
            }),
            name,
        )?,
    };
    let rule = Arc::new(PythonRule {
        name,
        place: std::sync::OnceLock::new(),
    });
    // Recorded first: recording may clear the tape (and its callables) of old nodes.
    let out = tracker_core::apply_extern(rule.clone(), &args, value).py()?;
    // Held until the result's handle holds it.
    let mut holder = None;
    if let tracker_core::Output::Tracked(t) = &out
        && let Some(tape) = t.tape()
    {
        let objects = objects_for(py, tape)?;
        let slot = {
            let mut objects = objects.borrow_mut();
            match objects.free.pop() {
                Some(slot) => {
                    if let Some(s) = objects.callables.get_mut(slot) {
                        *s = Some(pullback);
                    }
                    slot
                }
                None => {
                    objects.callables.push(Some(pullback));
                    objects.callables.len() - 1
                }
            }
        };
        let weak = PyWeakrefReference::new(&objects)?.unbind();
        let _ = rule.place.set((weak, slot));
        holder = Some(objects);
    }
    let handle = output_to_py(py, out);
    drop(holder);
    handle
}

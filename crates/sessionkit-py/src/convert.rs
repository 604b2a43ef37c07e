//! Python session dicts ↔ `serde_json` maps, under the GIL.
//!
//! The rule is Django's `JSONSerializer` (`json.dumps` with default options): `str`, `int`, `float`, `bool`,
//! `None`, `list`, `tuple` and `dict` (and their subclasses) are accepted; dict keys that are `int`, `float`, `bool`
//! or `None` become strings exactly as `json.dumps` writes them; anything else is the `TypeError` `json.dumps`
//! raises. Two deliberate differences, both raised as `ValueError` rather than stored: `NaN`/`Infinity` (a
//! `serde_json::Value` cannot hold them) and nesting deeper than 128 levels (the core's decoders refuse to read
//! such data back).

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

/// Deepest nesting accepted (the core's JSON and pickle readers stop at 128 levels).
const MAX_DEPTH: usize = 128;

/// Converts a session dict to a JSON map, as Django's JSONSerializer would serialize it.
pub fn dict_to_map(obj: &Bound<'_, PyAny>) -> PyResult<Map<String, Value>> {
    let dict = obj
        .cast::<PyDict>()
        .map_err(|_| PyTypeError::new_err(format!("session data must be a dict, not {}", type_name(obj))))?;
    dict_entries(dict, 1)
}

fn dict_entries(dict: &Bound<'_, PyDict>, depth: usize) -> PyResult<Map<String, Value>> {
    let mut map = Map::with_capacity(dict.len());
    for (key, value) in dict.iter() {
        let key = key_text(&key)?;
        let value = to_value(&value, depth)?;
        map.insert(key, value);
    }
    Ok(map)
}

/// A dict key as `json.dumps` writes it.
fn key_text(key: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(text) = key.cast::<PyString>() {
        return Ok(text.to_str()?.to_owned());
    }
    if let Ok(flag) = key.cast::<PyBool>() {
        return Ok(if flag.is_true() { "true" } else { "false" }.to_owned());
    }
    if key.is_none() {
        return Ok("null".to_owned());
    }
    if let Ok(int) = key.cast::<PyInt>() {
        return int_text(int);
    }
    if let Ok(float) = key.cast::<PyFloat>() {
        // json.dumps uses float.__repr__ for keys (and writes NaN/Infinity as such).
        return key.py().get_type::<PyFloat>().call_method1("__repr__", (float,))?.extract();
    }
    Err(PyTypeError::new_err(format!("keys must be str, int, float, bool or None, not {}", type_name(key))))
}

/// `int.__repr__` of an int (or int subclass), as `json.dumps` writes it.
fn int_text(int: &Bound<'_, PyInt>) -> PyResult<String> {
    int.py().get_type::<PyInt>().call_method1("__repr__", (int,))?.extract()
}

/// Converts one value.
pub fn to_value(obj: &Bound<'_, PyAny>, depth: usize) -> PyResult<Value> {
    // Exact types first: they are what sessions hold almost always.
    if let Ok(text) = obj.cast_exact::<PyString>() {
        return Ok(Value::String(text.to_str()?.to_owned()));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    // Before int: bool is an int subclass (and cannot itself be subclassed).
    if let Ok(flag) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(flag.is_true()));
    }
    if let Ok(int) = obj.cast::<PyInt>() {
        if let Ok(small) = int.extract::<i64>() {
            return Ok(Value::from(small));
        }
        if let Ok(big) = int.extract::<u64>() {
            return Ok(Value::from(big));
        }
        // Python ints are unbounded: keep the digits (serde_json's arbitrary_precision holds them exactly).
        let digits = int_text(int)?;
        let number: Number = serde_json::from_str(&digits)
            .map_err(|e| PyValueError::new_err(format!("cannot store the integer {digits}: {e}")))?;
        return Ok(Value::Number(number));
    }
    if let Ok(float) = obj.cast::<PyFloat>() {
        let value = float.value();
        return Number::from_f64(value).map(Value::Number).ok_or_else(|| {
            PyValueError::new_err(format!("sessionkit cannot store the float {value} (NaN and Infinity are not JSON)"))
        });
    }
    if depth >= MAX_DEPTH {
        return Err(PyValueError::new_err(format!(
            "session data is nested deeper than {MAX_DEPTH} levels (or contains a circular reference)"
        )));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        return Ok(Value::Object(dict_entries(dict, depth + 1)?));
    }
    if let Ok(list) = obj.cast::<PyList>() {
        return list.iter().map(|item| to_value(&item, depth + 1)).collect::<PyResult<Vec<_>>>().map(Value::Array);
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        return tuple.iter().map(|item| to_value(&item, depth + 1)).collect::<PyResult<Vec<_>>>().map(Value::Array);
    }
    if let Ok(text) = obj.cast::<PyString>() {
        return Ok(Value::String(text.to_str()?.to_owned()));
    }
    Err(PyTypeError::new_err(format!("Object of type {} is not JSON serializable", type_name(obj))))
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".to_owned())
}

/// Converts a JSON map to a new Python dict (insertion order kept), as `json.loads` would.
pub fn map_to_dict<'py>(py: Python<'py>, map: &Map<String, Value>) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (key, value) in map {
        dict.set_item(key, to_py(py, value)?)?;
    }
    Ok(dict)
}

/// Converts one JSON value to Python.
pub fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(flag) => PyBool::new(py, *flag).to_owned().into_any(),
        Value::Number(number) => number_to_py(py, number)?,
        Value::String(text) => PyString::new(py, text).into_any(),
        Value::Array(items) => {
            let items = items.iter().map(|item| to_py(py, item)).collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        Value::Object(map) => map_to_dict(py, map)?.into_any(),
    })
}

/// A JSON number as `json.loads` reads it: `int` unless the text has a fraction or exponent.
fn number_to_py<'py>(py: Python<'py>, number: &Number) -> PyResult<Bound<'py, PyAny>> {
    if let Some(small) = number.as_i64() {
        return Ok(small.into_pyobject(py)?.into_any());
    }
    if let Some(big) = number.as_u64() {
        return Ok(big.into_pyobject(py)?.into_any());
    }
    let text = number.to_string();
    if text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        let value: f64 =
            text.parse().map_err(|_| PyValueError::new_err(format!("stored number {text:?} is not a float")))?;
        return Ok(PyFloat::new(py, value).into_any());
    }
    py.get_type::<PyInt>().call1((text,))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_what_json_accepts_and_refuses_what_it_does_not() {
        Python::initialize();
        Python::attach(|py| {
            let code = c"{'s': 'é', 'i': 7, 'big': 10**30, 'neg': -2**70, 'f': 1e16, 'half': 0.5, 'b': True, \
                'n': None, 'l': [1, (2, 3)], 'd': {1: 'int key', None: 'x', False: 'y', 2.5: 'z'}}";
            let data = py.eval(code, None, None).unwrap();
            let map = dict_to_map(&data).unwrap();
            assert_eq!(map["big"].to_string(), "1000000000000000000000000000000");
            assert_eq!(map["d"].as_object().unwrap().keys().collect::<Vec<_>>(), ["1", "null", "false", "2.5"]);
            let back = map_to_dict(py, &map).unwrap();
            let expected = py
                .eval(
                    c"{'s': 'é', 'i': 7, 'big': 10**30, 'neg': -2**70, 'f': 1e16, 'half': 0.5, 'b': True, \
                    'n': None, 'l': [1, [2, 3]], 'd': {'1': 'int key', 'null': 'x', 'false': 'y', '2.5': 'z'}}",
                    None,
                    None,
                )
                .unwrap();
            assert!(back.eq(expected).unwrap());
            // Floats stay floats, ints stay ints.
            let f = back.get_item("f").unwrap().unwrap();
            assert!(f.is_instance_of::<PyFloat>());
            assert!(back.get_item("big").unwrap().unwrap().is_instance_of::<PyInt>());

            for bad in [c"{'x': object()}", c"{'x': {1, 2}}", c"{(1, 2): 'tuple key'}", c"{'x': float('nan')}"] {
                let data = py.eval(bad, None, None).unwrap();
                assert!(dict_to_map(&data).is_err(), "{bad:?}");
            }
            let deep = py.eval(c"(lambda: [d := {}, [d := {'k': d} for _ in range(200)], d][2])()", None, None);
            assert!(dict_to_map(&deep.unwrap()).is_err(), "too deep");
            assert!(dict_to_map(&py.eval(c"[1]", None, None).unwrap()).is_err(), "not a dict");
        });
    }
}

//! The CEL environment shared by playbook expressions and alert-field mappings.

use std::sync::Arc;

use cel::{Context, Env, Value};

thread_local! {
    // Building the standard environment registers every function: do it once per thread,
    // not per evaluation.
    static STDLIB: Arc<Env> = Arc::new(Env::stdlib());
}

/// A standard-library context with one variable bound.
pub fn variable_context(name: &str, value: Value) -> Context<'static, 'static> {
    let mut ctx = STDLIB.with(|env| Context::with_env(env.clone()));
    ctx.add_variable_from_value(name.to_owned(), value);
    ctx
}

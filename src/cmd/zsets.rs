//! Sorted-set commands.

use super::Command;
use crate::engine::blocking::BlockedOp;
use crate::engine::ctx::Ctx;
use crate::reply::Reply;

pub const COMMANDS: &[Command] = &[];

pub fn serve(_cx: &mut Ctx<'_, '_>, _op: &BlockedOp, _key: &[u8]) -> Option<Reply> {
    None
}

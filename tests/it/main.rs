//! The one integration-test binary: every module runs the built `mc` or the library against real
//! processes on 127.0.0.1.

mod check;
mod cli;
mod demo;
mod docs;
mod gateway;
mod identity;
mod install;
mod install_script;
mod link;
mod mirror;
mod node;
mod sim;
mod support;

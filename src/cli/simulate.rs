//! `stockwatch simulate`: write a simulated event stream to a file.

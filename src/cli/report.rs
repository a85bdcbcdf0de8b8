//! `hjepa report`: summarise a results database as markdown, CSV tables and plots.

use std::path::PathBuf;

use crate::error::InputError;

// The flags of `hjepa report` (its --help text is the doc comment on `Command::Report`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Results database made by `hjepa batch` or `hjepa merge`.
    db: PathBuf,
    /// Output folder (default: <db folder>/report).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let Args { db, out } = args;
    if !db.is_file() {
        return Err(InputError::new(&db, "", "no such results database").into());
    }
    let out = out.unwrap_or_else(|| {
        db.parent()
            .unwrap_or(std::path::Path::new("."))
            .join("report")
    });
    let r = crate::run::batch::report::load(&db)?;
    let w = crate::run::batch::report::write(&r, &out)?;
    println!("{}", std::fs::read_to_string(&w.markdown)?);
    println!(
        "written: {}, {}, {} plots in {}",
        w.markdown.display(),
        w.csv
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        w.plots.len(),
        out.display()
    );
    Ok(())
}

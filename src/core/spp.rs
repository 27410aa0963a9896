//! Pure core of qmail-spp plugins: the `control/smtpplugins` file, the
//! command language plugins write on stdout, and what a hook's chain of
//! plugins decides. Running a plugin is the edge's job (`io/plugins.rs`); it
//! hands each line a plugin wrote to [`Run::line`] and stops when that says
//! the chain is over.
//!
//! Semantics are qmail-spp 0.42's (with sagredo's `[auth]`/`[pass]`):
//! - a section header is a line starting with `[`; its *second* byte picks
//!   the hook (`[rcpt]`, `[r]` and `[rubbish` are all `[rcpt]`); plugin lines
//!   before the first header, or under an unknown letter, are never run;
//! - a plugin line `:cmd args` runs `/bin/sh -c "cmd args"`, any other line
//!   is the program's path with no arguments;
//! - each output line's last byte (normally its LF) is dropped, so a last
//!   line without LF loses its last character, and a NUL ends the text;
//! - `A N O E R D` end the plugin and the chain; `S U H C P L` do not;
//!   unknown letters and empty lines are ignored.

/// Where a chain of plugins runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// Before the greeting.
    Connection,
    /// HELO/EHLO, before the reply.
    Helo,
    /// MAIL, after the address is parsed.
    Mail,
    /// RCPT, before rcpthosts.
    Rcpt,
    /// DATA, before qmail-queue is started.
    Data,
    /// After a successful AUTH, before it is granted.
    Auth,
    /// RCPT, after every check, before the recipient is added.
    Pass,
}

impl Hook {
    pub const ALL: [Hook; 7] = [
        Hook::Connection,
        Hook::Helo,
        Hook::Mail,
        Hook::Rcpt,
        Hook::Data,
        Hook::Auth,
        Hook::Pass,
    ];

    /// The hook a section header selects, by its second byte.
    pub fn from_header(line: &[u8]) -> Option<Hook> {
        Some(match line.get(1)? {
            b'c' => Hook::Connection,
            b'h' => Hook::Helo,
            b'm' => Hook::Mail,
            b'r' => Hook::Rcpt,
            b'd' => Hook::Data,
            b'a' => Hook::Auth,
            b'p' => Hook::Pass,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Hook::Connection => "connection",
            Hook::Helo => "helo",
            Hook::Mail => "mail",
            Hook::Rcpt => "rcpt",
            Hook::Data => "data",
            Hook::Auth => "auth",
            Hook::Pass => "pass",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The bit of this hook in [`Plugins::mask`].
    pub fn bit(self) -> u8 {
        1 << self.index()
    }

    /// The variable a `C` command changes at this hook (`None`: `C` is
    /// ignored here).
    pub fn address_var(self) -> Option<&'static str> {
        match self {
            Hook::Mail => Some("SMTPMAILFROM"),
            Hook::Rcpt | Hook::Pass => Some("SMTPRCPTTO"),
            _ => None,
        }
    }
}

/// One line of `smtpplugins`: a program, or `:` and a shell command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    /// The line as written (the failure replies quote it, as spp does).
    pub line: Vec<u8>,
}

impl Plugin {
    /// The program and its arguments.
    pub fn argv(&self) -> (&[u8], Vec<&[u8]>) {
        match self.line.strip_prefix(b":") {
            Some(cmd) => (b"/bin/sh", vec![b"-c".as_slice(), cmd]),
            None => (&self.line, Vec::new()),
        }
    }
}

/// The plugins of each hook, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plugins {
    hooks: [Vec<Plugin>; 7],
}

impl Plugins {
    /// Parse the lines of `smtpplugins` as qmail's `control_readfile`
    /// returns them (no empty or `#` lines, trailing white space gone).
    pub fn parse<L: AsRef<[u8]>>(lines: &[L]) -> Plugins {
        let mut p = Plugins::default();
        let mut section: Option<Hook> = None;
        for line in lines {
            let line = line.as_ref();
            if line.first() == Some(&b'[') {
                section = Hook::from_header(line);
            } else if let Some(hook) = section {
                p.hooks[hook.index()].push(Plugin {
                    line: line.to_vec(),
                });
            }
        }
        p
    }

    pub fn get(&self, hook: Hook) -> &[Plugin] {
        &self.hooks[hook.index()]
    }

    /// One bit per hook that has plugins ([`Hook::bit`]).
    pub fn mask(&self) -> u8 {
        Hook::ALL
            .iter()
            .filter(|h| !self.get(**h).is_empty())
            .fold(0, |m, h| m | h.bit())
    }
}

/// The queue an `L` command adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Later {
    Mail,
    Rcpt,
    Data,
}

/// One command of plugin output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `A`: accept, and no plugins for the rest of the session.
    Accept,
    /// `N`: accept, skip the remaining plugins of this hook.
    Next,
    /// `O`: accept and skip qmail's own check (rcpthosts at `[rcpt]`,
    /// badmailfrom at `[mail]`).
    Omit,
    /// `Emsg`: send `msg`, reject the command.
    Error(Vec<u8>),
    /// `Rmsg`: send `msg`, end the session.
    Quit(Vec<u8>),
    /// `D`: end the session silently.
    Drop,
    /// `Pmsg`: send `msg` now.
    Print(Vec<u8>),
    /// `Svar=value`.
    Set(Vec<u8>, Vec<u8>),
    /// `Uvar`.
    Unset(Vec<u8>),
    /// `Hheader`: a header line for the message.
    Header(Vec<u8>),
    /// `Caddr`: the address of this MAIL/RCPT becomes `addr`.
    Change(Vec<u8>),
    /// `LMmsg`, `LRmsg`, `LDmsg`: reject the next MAIL/RCPT/DATA with `msg`.
    Later(Later, Vec<u8>),
}

impl Command {
    /// Whether this command ends the plugin and the chain.
    pub fn ends(&self) -> bool {
        matches!(
            self,
            Command::Accept
                | Command::Next
                | Command::Omit
                | Command::Error(_)
                | Command::Quit(_)
                | Command::Drop
        )
    }
}

/// Parse one output line as spp reads it: `raw` is the line with its LF,
/// or the last bytes before EOF without one. `None`: nothing to do.
pub fn parse_line(raw: &[u8]) -> Option<Command> {
    // spp overwrites the last byte with NUL: the LF, or a real character.
    let text = &raw[..raw.len().checked_sub(1)?];
    let text = match memchr::memchr(0, text) {
        Some(n) => &text[..n],
        None => text,
    };
    let (&cmd, rest) = text.split_first()?;
    let rest = rest.to_vec();
    Some(match cmd {
        b'A' => Command::Accept,
        b'N' => Command::Next,
        b'O' => Command::Omit,
        b'E' => Command::Error(rest),
        b'R' => Command::Quit(rest),
        b'D' => Command::Drop,
        b'P' => Command::Print(rest),
        b'S' => {
            let eq = memchr::memchr(b'=', &rest)?;
            if eq == 0 {
                return None;
            }
            Command::Set(rest[..eq].to_vec(), rest[eq + 1..].to_vec())
        }
        // A name with `=` names no variable.
        b'U' if !rest.is_empty() && !rest.contains(&b'=') => Command::Unset(rest),
        b'H' => Command::Header(rest),
        b'C' => Command::Change(rest),
        b'L' => {
            let (&which, msg) = rest.split_first()?;
            let which = match which {
                b'M' => Later::Mail,
                b'R' => Later::Rcpt,
                b'D' => Later::Data,
                _ => return None,
            };
            Command::Later(which, msg.to_vec())
        }
        _ => return None,
    })
}

/// How a hook's chain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `A`.
    Accept,
    /// `N`.
    Next,
    /// `O`.
    Omit,
    /// `E`: the command is rejected with [`Run::message`].
    Reject,
    /// `R`: [`Run::message`] is sent and the session ends.
    Quit,
    /// `D`: the session ends without a word.
    Drop,
    /// A plugin could not run, crashed, exited 120, timed out or wrote too
    /// much: [`Run::message`] is spp's `451`, the command is rejected.
    Failure,
}

/// At most this much output is read from one plugin run; more is a
/// failure (a plugin cannot make us hold megabytes).
pub const MAX_OUTPUT: usize = 64 * 1024;

/// Everything a hook's plugins said, for the session to apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Run {
    pub hook: Option<Hook>,
    /// `S`/`U` (and the variable a `C` changes), in order; `None` unsets.
    pub env: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// `H` lines, each ending in LF.
    pub headers: Vec<u8>,
    /// The last `C` address, at hooks where `C` counts.
    pub address: Option<Vec<u8>>,
    /// `L` lines (each ending in CRLF) for the next MAIL, RCPT, DATA.
    pub later: [Vec<u8>; 3],
    /// `P` lines, each ending in CRLF, to send before anything else.
    pub print: Vec<u8>,
    /// The text of `E`/`R`, or the failure reply, ending in CRLF.
    pub message: Vec<u8>,
    /// `None` when every plugin ran without a verdict (accept).
    pub end: Option<End>,
    /// One log line per failure (plugin line and why).
    pub log: Vec<String>,
}

fn line_crlf(out: &mut Vec<u8>, msg: &[u8]) {
    out.extend_from_slice(msg);
    out.extend_from_slice(b"\r\n");
}

impl Run {
    pub fn new(hook: Hook) -> Run {
        Run {
            hook: Some(hook),
            ..Run::default()
        }
    }

    /// The value a variable has after this run's changes, if it changed
    /// (`Some(None)`: unset).
    pub fn changed(&self, name: &[u8]) -> Option<Option<&[u8]>> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_deref())
    }

    /// Apply one line a plugin wrote (see [`parse_line`]). Returns `true`
    /// when the plugin and the chain are over.
    pub fn line(&mut self, raw: &[u8]) -> bool {
        let Some(cmd) = parse_line(raw) else {
            return false;
        };
        self.apply(cmd)
    }

    /// Apply one command; `true` when it ends the chain.
    pub fn apply(&mut self, cmd: Command) -> bool {
        let ends = cmd.ends();
        match cmd {
            Command::Accept => self.end = Some(End::Accept),
            Command::Next => self.end = Some(End::Next),
            Command::Omit => self.end = Some(End::Omit),
            Command::Drop => self.end = Some(End::Drop),
            Command::Error(m) => {
                line_crlf(&mut self.message, &m);
                self.end = Some(End::Reject);
            }
            Command::Quit(m) => {
                line_crlf(&mut self.message, &m);
                self.end = Some(End::Quit);
            }
            Command::Print(m) => line_crlf(&mut self.print, &m),
            Command::Set(k, v) => self.env.push((k, Some(v))),
            Command::Unset(k) => self.env.push((k, None)),
            Command::Header(h) => {
                self.headers.extend_from_slice(&h);
                self.headers.push(b'\n');
            }
            Command::Change(addr) => {
                if let Some(var) = self.hook.and_then(Hook::address_var) {
                    self.env.push((var.as_bytes().to_vec(), Some(addr.clone())));
                    self.address = Some(addr);
                }
            }
            Command::Later(which, m) => {
                let i = match which {
                    Later::Mail => 0,
                    Later::Rcpt => 1,
                    Later::Data => 2,
                };
                line_crlf(&mut self.later[i], &m);
            }
        }
        ends
    }

    /// A plugin failed: spp's `451 qmail-spp failure: <line>: <why>`
    /// replaces any verdict it gave, and the chain ends.
    pub fn fail(&mut self, plugin: &Plugin, why: &str) {
        // `P` lines were the start of a reply that will not come.
        self.print.clear();
        self.message.clear();
        self.message.extend_from_slice(b"451 qmail-spp failure: ");
        self.message.extend_from_slice(&plugin.line);
        self.message.extend_from_slice(b": ");
        self.message.extend_from_slice(why.as_bytes());
        self.message.extend_from_slice(b" (#4.3.0)\r\n");
        self.end = Some(End::Failure);
        self.log.push(format!(
            "spp: {} plugin {}: {why}",
            self.hook.map_or("?", Hook::name),
            crate::smtp::session::printable(&plugin.line)
        ));
    }

    /// Whether the chain is over.
    pub fn over(&self) -> bool {
        self.end.is_some()
    }
}

/// How one plugin run ended, as the edge saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this status (only 120 means something).
    Code(i32),
    /// Killed by a signal.
    Signal,
    /// Could not be started.
    NotStarted,
    /// Still running at `SPP_TIMEOUT`: killed.
    TimedOut,
    /// Wrote more than [`MAX_OUTPUT`]: killed.
    TooMuchOutput,
}

impl Run {
    /// Feed a whole plugin's output, then its exit, as the edge does piece
    /// by piece. Returns `true` when the chain is over.
    pub fn plugin(&mut self, plugin: &Plugin, output: &[u8], exit: Exit) -> bool {
        let mut rest = output;
        while !rest.is_empty() {
            let n = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
            if self.line(&rest[..n]) {
                break;
            }
            rest = &rest[n..];
        }
        self.exited(plugin, exit)
    }

    /// The plugin's exit, after its output. Returns `true` when the chain
    /// is over.
    pub fn exited(&mut self, plugin: &Plugin, exit: Exit) -> bool {
        match exit {
            Exit::Code(120) | Exit::NotStarted => self.fail(plugin, "can't execute"),
            Exit::Signal => self.fail(plugin, "child crashed"),
            Exit::TimedOut => self.fail(plugin, "timed out"),
            Exit::TooMuchOutput => self.fail(plugin, "too much output"),
            Exit::Code(_) => {}
        }
        self.over()
    }
}

/// Run a chain: `one` runs a plugin, feeding its output to the [`Run`]
/// (which it also reads for the environment changes so far), and returns
/// how it exited.
pub fn chain(
    hook: Hook,
    plugins: &[Plugin],
    mut one: impl FnMut(&Plugin, &mut Run) -> Exit,
) -> Run {
    let mut run = Run::new(hook);
    for p in plugins {
        let exit = one(p, &mut run);
        if run.exited(p, exit) {
            break;
        }
    }
    run
}

/// What plugins set up that outlives one hook: the session keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// The variables spp puts into qmail-smtpd's environment (its own
    /// `SMTP*` ones and `S`/`U`), seen by later plugins and qmail-queue;
    /// `None` unsets. One entry per name.
    pub env: Vec<(String, Option<Vec<u8>>)>,
    /// `H` lines for the next message, after the Received line.
    pub headers: Vec<u8>,
    /// Queued `L` replies for the next MAIL, RCPT, DATA.
    pub later: [Vec<u8>; 3],
    /// An `A` was given: no more plugins this session.
    pub disabled: bool,
    /// RCPT commands in this transaction, including rejected ones.
    pub rcpts_all: u64,
}

impl State {
    /// Set (`Some`) or unset (`None`) a variable.
    pub fn set(&mut self, name: &str, value: Option<&[u8]>) {
        let value = value.map(<[u8]>::to_vec);
        match self.env.iter_mut().find(|(k, _)| k == name) {
            Some(e) => e.1 = value,
            None => self.env.push((name.to_string(), value)),
        }
    }

    /// Take in what a hook's plugins said (not the verdict itself).
    pub fn apply(&mut self, run: &Run) {
        for (k, v) in &run.env {
            self.set(&String::from_utf8_lossy(k), v.as_deref());
        }
        self.headers.extend_from_slice(&run.headers);
        for (q, add) in self.later.iter_mut().zip(&run.later) {
            q.extend_from_slice(add);
        }
        if run.end == Some(End::Accept) {
            self.disabled = true;
        }
    }

    /// The queued `L` replies for a command, if any.
    pub fn queued(&self, which: Later) -> Option<&[u8]> {
        let q = &self.later[which as usize];
        (!q.is_empty()).then_some(q.as_slice())
    }

    /// RSET and the end of a message: headers, queued replies and the
    /// recipient count go.
    pub fn reset_message(&mut self) {
        self.headers.clear();
        self.later = Default::default();
        self.rcpts_all = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugins(text: &str) -> Plugins {
        let lines: Vec<&[u8]> = text.lines().map(str::as_bytes).collect();
        Plugins::parse(&lines)
    }

    #[test]
    fn sections_by_second_byte() {
        let p = plugins(
            "orphan\n[connection]\nc1\n[rcpt]\nr1\n[r]\nr2\n[rubbish\nr3\n[x]\nlost\n[helo]\n:h1 a b\n[mail]\nm1\n[data]\nd1\n[auth]\na1\n[pass]\np1\n[]\nlost2",
        );
        let names = |h| {
            p.get(h)
                .iter()
                .map(|x| String::from_utf8(x.line.clone()).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(Hook::Connection), ["c1"]);
        assert_eq!(names(Hook::Rcpt), ["r1", "r2", "r3"]);
        assert_eq!(names(Hook::Helo), [":h1 a b"]);
        assert_eq!(names(Hook::Mail), ["m1"]);
        assert_eq!(names(Hook::Data), ["d1"]);
        assert_eq!(names(Hook::Auth), ["a1"]);
        assert_eq!(names(Hook::Pass), ["p1"]);
        assert_eq!(p.mask(), 0x7f);
        assert_eq!(plugins("[rcpt]\n").mask(), 0);
        assert_eq!(plugins("").mask(), 0);
        assert_eq!(plugins("[RCPT]\nx").mask(), 0, "letters are case-sensitive");
    }

    #[test]
    fn argv() {
        let p = Plugin {
            line: b":echo E550 no".to_vec(),
        };
        assert_eq!(
            p.argv(),
            (&b"/bin/sh"[..], vec![&b"-c"[..], &b"echo E550 no"[..]])
        );
        let p = Plugin {
            line: b"plugins/x arg".to_vec(),
        };
        assert_eq!(p.argv(), (&b"plugins/x arg"[..], vec![]));
    }

    #[test]
    fn output_lines() {
        use Command::*;
        let t: &[(&[u8], Option<Command>)] = &[
            (b"A\n", Some(Accept)),
            (b"N\n", Some(Next)),
            (b"O\n", Some(Omit)),
            (b"D\n", Some(Drop)),
            (b"A", None),
            (b"Ax", Some(Accept)),
            (b"E550 no\n", Some(Error(b"550 no".to_vec()))),
            (b"E550 no", Some(Error(b"550 n".to_vec()))),
            (b"E550 no\r\n", Some(Error(b"550 no\r".to_vec()))),
            (b"E\n", Some(Error(vec![]))),
            (b"R421 bye\n", Some(Quit(b"421 bye".to_vec()))),
            (b"P451-first\n", Some(Print(b"451-first".to_vec()))),
            (b"SX=1=2\n", Some(Set(b"X".to_vec(), b"1=2".to_vec()))),
            (b"SX=\n", Some(Set(b"X".to_vec(), vec![]))),
            (b"SX\n", None),
            (b"S=1\n", None),
            (b"UX\n", Some(Unset(b"X".to_vec()))),
            (b"U\n", None),
            (b"UX=1\n", None),
            (b"HX-A: b\n", Some(Header(b"X-A: b".to_vec()))),
            (b"Ca@b\n", Some(Change(b"a@b".to_vec()))),
            (
                b"LM450 m\n",
                Some(Later(super::Later::Mail, b"450 m".to_vec())),
            ),
            (
                b"LR450 r\n",
                Some(Later(super::Later::Rcpt, b"450 r".to_vec())),
            ),
            (
                b"LD450 d\n",
                Some(Later(super::Later::Data, b"450 d".to_vec())),
            ),
            (b"LX450\n", None),
            (b"L\n", None),
            (b"\n", None),
            (b"", None),
            (b"x\n", None),
            (b"e550\n", None),
            (b"E55\x000 cut\n", Some(Error(b"55".to_vec()))),
            (b"\x00E\n", None),
        ];
        for (raw, want) in t {
            assert_eq!(&parse_line(raw), want, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    fn run_one(hook: Hook, out: &[u8], exit: Exit) -> Run {
        let p = Plugin {
            line: b"plugins/t".to_vec(),
        };
        chain(hook, std::slice::from_ref(&p), |_, run| {
            run.plugin(&p, out, Exit::Code(0));
            exit
        })
    }

    #[test]
    fn verdicts() {
        let r = run_one(
            Hook::Rcpt,
            b"P451-a\nHX: 1\nE451 b\nE550 never\n",
            Exit::Code(0),
        );
        assert_eq!(r.end, Some(End::Reject));
        assert_eq!(r.print, b"451-a\r\n");
        assert_eq!(r.message, b"451 b\r\n");
        assert_eq!(r.headers, b"X: 1\n");

        let r = run_one(Hook::Rcpt, b"\n\nSA=1\nUB\nCx@y\nN\n", Exit::Code(1));
        assert_eq!(r.end, Some(End::Next));
        assert_eq!(r.address.as_deref(), Some(&b"x@y"[..]));
        assert_eq!(r.changed(b"SMTPRCPTTO"), Some(Some(&b"x@y"[..])));
        assert_eq!(r.changed(b"A"), Some(Some(&b"1"[..])));
        assert_eq!(r.changed(b"B"), Some(None));
        assert_eq!(r.changed(b"C"), None);

        let r = run_one(Hook::Helo, b"Cx@y\n", Exit::Code(0));
        assert_eq!(r.address, None, "C is ignored outside MAIL/RCPT/pass");
        assert_eq!(r.end, None);

        for exit in [
            Exit::Code(120),
            Exit::Signal,
            Exit::TimedOut,
            Exit::TooMuchOutput,
            Exit::NotStarted,
        ] {
            let r = run_one(Hook::Mail, b"E550 replaced\n", exit);
            assert_eq!(r.end, Some(End::Failure), "{exit:?}");
            assert!(
                r.message.starts_with(b"451 qmail-spp failure: plugins/t: "),
                "{:?}",
                String::from_utf8_lossy(&r.message)
            );
            assert!(r.message.ends_with(b" (#4.3.0)\r\n"));
        }
        for code in [0, 1, 100, 111, 127] {
            assert_eq!(
                run_one(Hook::Mail, b"O\n", Exit::Code(code)).end,
                Some(End::Omit)
            );
        }
        let r = run_one(Hook::Data, b"LD554 d\nLR450 r\nLM451 m\n", Exit::Code(0));
        assert_eq!(
            r.later,
            [
                b"451 m\r\n".to_vec(),
                b"450 r\r\n".to_vec(),
                b"554 d\r\n".to_vec()
            ]
        );
    }

    #[test]
    fn chain_stops_at_a_verdict() {
        let p = plugins("[rcpt]\none\ntwo\nthree");
        let mut ran = Vec::new();
        let run = chain(Hook::Rcpt, p.get(Hook::Rcpt), |pl, run| {
            ran.push(pl.line.clone());
            // Each later plugin sees what the earlier ones set.
            let seen = run.changed(b"N").flatten().unwrap_or(b"0")[0] - b'0';
            let out = if pl.line == b"two" {
                "A\n".to_string()
            } else {
                format!("SN={}\n", seen + 1)
            };
            run.plugin(pl, out.as_bytes(), Exit::Code(0));
            Exit::Code(0)
        });
        assert_eq!(ran, [b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(run.end, Some(End::Accept));
        assert_eq!(run.changed(b"N"), Some(Some(&b"1"[..])));
        let run = chain(Hook::Rcpt, p.get(Hook::Rcpt), |_, _| Exit::Code(0));
        assert_eq!(run.end, None);
        let run = chain(Hook::Rcpt, p.get(Hook::Rcpt), |_, _| Exit::Signal);
        assert_eq!(run.end, Some(End::Failure));
        assert_eq!(
            run.message,
            b"451 qmail-spp failure: one: child crashed (#4.3.0)\r\n"
        );
    }
}

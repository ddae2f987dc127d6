//! A small blocking RESP client, for commands that talk to another server themselves
//! (MIGRATE). It sends commands and reads simple replies: status, error, integer and bulk;
//! anything else, or a line longer than [`LINE_BYTES_MAX`], is an error.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Longest reply line accepted (a status or an error).
const LINE_BYTES_MAX: usize = 64 * 1024;
/// Longest bulk reply accepted.
const BULK_BYTES_MAX: usize = 512 * 1024 * 1024;

/// A reply from the other server.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// `+...`
    Status(String),
    /// `-...` (without the dash).
    Error(String),
    /// `:n`
    Int(i64),
    /// `$...` (`None`: nil).
    Bulk(Option<Vec<u8>>),
}

/// A connection to another server.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    /// Connects with `timeout` for the connection and for every later read and write.
    pub fn connect(host: &str, port: u16, timeout: Duration) -> io::Result<Client> {
        let addr = (host, port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::other(format!("can't resolve {host}")))?;
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        let client = Client {
            reader: BufReader::new(stream),
        };
        client.set_timeout(timeout)?;
        Ok(client)
    }

    /// Sets the timeout of every later read and write.
    pub fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        let stream = self.reader.get_ref();
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))
    }

    /// Sends several commands in one write (a pipeline).
    pub fn send(&mut self, commands: &[Vec<&[u8]>]) -> io::Result<()> {
        let mut out = Vec::new();
        for argv in commands {
            super::encode_command(argv, &mut out);
        }
        self.reader.get_mut().write_all(&out)
    }

    /// Reads the next reply.
    pub fn read(&mut self) -> io::Result<Answer> {
        let line = self.line()?;
        let (kind, rest) = line.split_at(1);
        let text = || String::from_utf8_lossy(rest).into_owned();
        let number = || {
            text()
                .parse::<i64>()
                .map_err(|_| invalid("a malformed integer"))
        };
        match kind[0] {
            b'+' => Ok(Answer::Status(text())),
            b'-' => Ok(Answer::Error(text())),
            b':' => Ok(Answer::Int(number()?)),
            b'$' => match number()? {
                -1 => Ok(Answer::Bulk(None)),
                n if (0..=BULK_BYTES_MAX as i64).contains(&n) => {
                    let mut body = vec![0u8; n as usize + 2];
                    std::io::Read::read_exact(&mut self.reader, &mut body)?;
                    body.truncate(n as usize);
                    Ok(Answer::Bulk(Some(body)))
                }
                _ => Err(invalid("a bulk length out of range")),
            },
            _ => Err(invalid("a reply type this client does not read")),
        }
    }

    /// One line without its CRLF, not empty.
    fn line(&mut self) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        let read = std::io::Read::take(&mut self.reader, LINE_BYTES_MAX as u64)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if !line.ends_with(b"\r\n") || line.len() < 3 {
            return Err(invalid("a malformed reply line"));
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the server sent {what}"),
    )
}

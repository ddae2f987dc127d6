//! A seeded generator of random commands over every command family, valid and invalid.

/// How a reply is compared.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum Compare {
    Exact,
    /// The order of elements is undefined (sets, hashes, KEYS...).
    Sorted,
    /// SCAN-family reply: sort the element list.
    ScanSorted,
    /// TTL-family: only the sign matters (the two servers run a few ms apart).
    Ttl,
}

pub struct Gen {
    rng: fastrand::Rng,
    pub in_multi: bool,
    /// Also emit TTLs of a few milliseconds (for tests that exercise expiry).
    pub short_ttls: bool,
}

pub const KEYS: &[&str] = &["k0", "k1", "k2", "k3", "k4", "k5"];
const MEMBERS: &[&str] = &["a", "b", "c", "d", "1", "2", "10", "-5", "x y", ""];
const INTS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "-1",
    "-2",
    "5",
    "100",
    "x",
    "1.5",
    "-0",
    "01",
    "9223372036854775807",
];
const FLOATS: &[&str] = &[
    "1", "2", "1.5", "-1", "0", "0.1", "3.0e-2", "1e3", "inf", "-inf", "x", "nan", "0x10",
];
const VALUES: &[&str] = &[
    "v",
    "hello",
    "1",
    "10",
    "-3",
    "1.5",
    "",
    "abc",
    "9223372036854775807",
    "12345678901234567890123",
];

impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen {
            rng: fastrand::Rng::with_seed(seed),
            in_multi: false,
            short_ttls: false,
        }
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.rng.usize(..from.len())]
    }

    fn key(&mut self) -> String {
        self.pick(KEYS).to_string()
    }

    fn chance(&mut self, percent: u32) -> bool {
        self.rng.u32(..100) < percent
    }

    fn score_bound(&mut self) -> String {
        let b = self.pick(&[
            "-inf", "+inf", "1", "2", "(1", "(2", "0", "1.5", "x", "(x", "inf",
        ]);
        b.to_string()
    }

    fn lex_bound(&mut self) -> String {
        self.pick(&["-", "+", "[a", "(a", "[c", "(d", "b", "[", "(", "[1"])
            .to_string()
    }

    fn side(&mut self) -> &'static str {
        self.pick(&["LEFT", "RIGHT", "left", "RIGHT", "up"])
    }

    /// One command and how to compare its reply. Inside MULTI only commands whose replies are
    /// compared exactly are queued (EXEC's reply is compared as a whole).
    pub fn command(&mut self) -> (Vec<String>, Compare) {
        loop {
            let (args, how) = self.any_command();
            if !self.in_multi || how == Compare::Exact {
                return (args, how);
            }
        }
    }

    fn any_command(&mut self) -> (Vec<String>, Compare) {
        let k = self.key();
        let k2 = self.key();
        let m = self.pick(MEMBERS).to_string();
        let v = self.pick(VALUES).to_string();
        let i = self.pick(INTS).to_string();
        let j = self.pick(INTS).to_string();
        let f = self.pick(FLOATS).to_string();
        let s = |items: &[&str]| items.iter().map(|x| x.to_string()).collect::<Vec<String>>();
        use Compare::*;
        let family = self.rng.u32(..100);
        if !self.in_multi && self.chance(2) {
            self.in_multi = true;
            return (s(&["MULTI"]), Exact);
        }
        if self.in_multi && self.chance(15) {
            self.in_multi = false;
            return (
                s(&[if self.chance(85) { "EXEC" } else { "DISCARD" }]),
                Exact,
            );
        }
        let sorted = Sorted;
        let cmd: (Vec<String>, Compare) = match family {
            // strings
            0..=3 => {
                let mut c = s(&["SET", &k, &v]);
                for _ in 0..self.rng.usize(..3) {
                    let opt = if self.short_ttls && self.chance(30) {
                        self.pick(&["PX 1", "PX 3", "PX 10"])
                    } else {
                        self.pick(&[
                            "NX",
                            "XX",
                            "GET",
                            "KEEPTTL",
                            "EX 100",
                            "PX 100000",
                            "EXAT 4102444800",
                            "PXAT 4102444800000",
                            "EX 0",
                            "EX x",
                            "ex 100",
                            "BAD",
                        ])
                    };
                    c.extend(opt.split(' ').map(String::from));
                }
                (c, Exact)
            }
            4..=5 => (s(&["GET", &k]), Exact),
            6 => (s(&[self.pick(&["SETNX", "GETSET"]), &k, &v]), Exact),
            7 => (
                s(&[
                    self.pick(&["SETEX", "PSETEX"]),
                    &k,
                    self.pick(&["100000", "0", "-1", "x"]),
                    &v,
                ]),
                Exact,
            ),
            8 => (
                s(&[self.pick(&["GETDEL", "STRLEN", "INCR", "DECR"]), &k]),
                Exact,
            ),
            9 => {
                let opt = self.pick(&[
                    "",
                    "EX 100",
                    "PERSIST",
                    "PXAT 4102444800000",
                    "EX x",
                    "NX",
                    "EXAT 1",
                ]);
                let mut c = s(&["GETEX", &k]);
                c.extend(opt.split(' ').filter(|x| !x.is_empty()).map(String::from));
                (c, Exact)
            }
            10 => (s(&["MGET", &k, &k2, "k9"]), Exact),
            11 => {
                let mut c = s(&[self.pick(&["MSET", "MSETNX"]), &k, &v, &k2, &m]);
                if self.chance(20) {
                    c.pop();
                }
                (c, Exact)
            }
            12 => (s(&["APPEND", &k, &v]), Exact),
            13 => (s(&[self.pick(&["INCRBY", "DECRBY"]), &k, &i]), Exact),
            14 => (s(&["INCRBYFLOAT", &k, &f]), Exact),
            15 => (s(&["GETRANGE", &k, &i, &j]), Exact),
            16 => (
                s(&[
                    "SETRANGE",
                    &k,
                    self.pick(&["0", "1", "3", "-1", "x", "600000000"]),
                    &v,
                ]),
                Exact,
            ),
            17 => {
                let mut c = s(&["LCS", &k, &k2]);
                c.extend(
                    s(&[self.pick(&[
                        "",
                        "LEN",
                        "IDX",
                        "IDX WITHMATCHLEN",
                        "IDX MINMATCHLEN 2",
                        "LEN IDX",
                        "FOO",
                    ])])
                    .into_iter()
                    .flat_map(|o| {
                        o.split(' ')
                            .filter(|x| !x.is_empty())
                            .map(String::from)
                            .collect::<Vec<_>>()
                    }),
                );
                (c, Exact)
            }
            // keys
            18 => (
                s(&[self.pick(&["DEL", "UNLINK", "EXISTS", "TOUCH"]), &k, &k2]),
                Exact,
            ),
            19 => (s(&["TYPE", &k]), Exact),
            20 => {
                let cmd = self.pick(&["EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"]);
                let t = if self.short_ttls && self.chance(50) && cmd == "PEXPIRE" {
                    self.pick(&["1", "2", "5", "20"])
                } else {
                    self.pick(&[
                        "1000",
                        "100000000",
                        "0",
                        "-1",
                        "x",
                        "4102444800",
                        "4102444800000",
                        "9223372036854775807",
                    ])
                };
                let mut c = s(&[cmd, &k, t]);
                if self.chance(40) {
                    c.push(self.pick(&["NX", "XX", "GT", "LT", "FOO"]).to_string());
                }
                (c, Exact)
            }
            21 => (
                s(&[self.pick(&["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"]), &k]),
                Ttl,
            ),
            22 => (s(&["PERSIST", &k]), Exact),
            23 => (s(&[self.pick(&["RENAME", "RENAMENX"]), &k, &k2]), Exact),
            24 => {
                let mut c = s(&["COPY", &k, &k2]);
                match self.rng.u32(..4) {
                    0 => c.extend(s(&["DB", "1"])),
                    1 => c.push("REPLACE".into()),
                    2 => c.extend(s(&["DB", "x"])),
                    _ => {}
                }
                (c, Exact)
            }
            25 => (
                s(&[
                    "KEYS",
                    self.pick(&["*", "k*", "k[0-2]", "?1", "*[^0-3]", "nomatch"]),
                ]),
                sorted,
            ),
            26 => (
                s(&[
                    "OBJECT",
                    // Not REFCOUNT inside MULTI: there Redis counts the reference its queued
                    // command still holds on a value SET earlier in the same transaction (a
                    // documented difference, see the README).
                    if self.in_multi {
                        self.pick(&["ENCODING", "encoding", "FOO"])
                    } else {
                        self.pick(&["ENCODING", "encoding", "REFCOUNT", "FOO"])
                    },
                    &k,
                ]),
                Exact,
            ),
            27 => (s(&["MOVE", &k, self.pick(&["1", "0", "x", "20"])]), Exact),
            28 => (
                s(&[self.pick(&["DBSIZE", "PING", "ECHO"])])
                    .into_iter()
                    .chain(std::iter::once(v.clone()))
                    .take(if self.chance(50) { 1 } else { 2 })
                    .collect(),
                Exact,
            ),
            29 => (
                s(&["SELECT", self.pick(&["0", "1", "0", "x", "16"])]),
                Exact,
            ),
            // lists
            30..=33 => {
                let mut c = s(&[self.pick(&["LPUSH", "RPUSH", "LPUSHX", "RPUSHX"]), &k, &m]);
                if self.chance(50) {
                    c.push(self.pick(MEMBERS).to_string());
                }
                (c, Exact)
            }
            34 => {
                let mut c = s(&[self.pick(&["LPOP", "RPOP"]), &k]);
                if self.chance(50) {
                    c.push(i.clone());
                }
                (c, Exact)
            }
            35 => (s(&["LLEN", &k]), Exact),
            36 => (s(&["LRANGE", &k, &i, &j]), Exact),
            37 => (s(&["LINDEX", &k, &i]), Exact),
            38 => (s(&["LSET", &k, &i, &m]), Exact),
            39 => (s(&["LREM", &k, &i, &m]), Exact),
            40 => (s(&["LTRIM", &k, &i, &j]), Exact),
            41 => (
                s(&[
                    "LINSERT",
                    &k,
                    self.pick(&["BEFORE", "AFTER", "after", "x"]),
                    &m,
                    &v,
                ]),
                Exact,
            ),
            42 => {
                let mut c = s(&["LPOS", &k, &m]);
                for _ in 0..self.rng.usize(..3) {
                    c.push(self.pick(&["RANK", "COUNT", "MAXLEN", "FOO"]).to_string());
                    c.push(self.pick(&["1", "-1", "0", "2", "x", "-2"]).to_string());
                }
                (c, Exact)
            }
            43 => {
                let (a, b) = (self.side(), self.side());
                (s(&["LMOVE", &k, &k2, a, b]), Exact)
            }
            44 => (s(&["RPOPLPUSH", &k, &k2]), Exact),
            45 => {
                let mut c = s(&[
                    "LMPOP",
                    self.pick(&["1", "2", "0", "x", "5"]),
                    &k,
                    &k2,
                    self.side(),
                ]);
                if self.chance(50) {
                    c.extend(s(&["COUNT", self.pick(&["1", "3", "0", "x"])]));
                }
                (c, Exact)
            }
            46 => (
                s(&[
                    self.pick(&["BLPOP", "BRPOP"]),
                    &k,
                    &k2,
                    self.pick(&["0.01", "x", "-1"]),
                ]),
                Exact,
            ),
            47 => {
                let (a, b) = (self.side(), self.side());
                (s(&["BLMOVE", &k, &k2, a, b, "0.01"]), Exact)
            }
            48 => (
                s(&["BLMPOP", "0.01", "1", &k, self.side(), "COUNT", "2"]),
                Exact,
            ),
            // hashes
            49..=51 => {
                let mut c = s(&[self.pick(&["HSET", "HMSET", "HSETNX"]), &k, &m, &v]);
                if self.chance(40) {
                    c.push(self.pick(MEMBERS).to_string());
                    if self.chance(80) {
                        c.push(self.pick(VALUES).to_string());
                    }
                }
                (c, Exact)
            }
            52 => (
                s(&[self.pick(&["HGET", "HSTRLEN", "HEXISTS", "HDEL"]), &k, &m]),
                Exact,
            ),
            53 => (s(&["HMGET", &k, &m, "zz"]), Exact),
            54 => (s(&[self.pick(&["HKEYS", "HVALS", "HGETALL"]), &k]), sorted),
            55 => (s(&["HLEN", &k]), Exact),
            56 => (s(&["HINCRBY", &k, &m, &i]), Exact),
            57 => (s(&["HINCRBYFLOAT", &k, &m, &f]), Exact),
            58 => {
                let mut c = s(&["HRANDFIELD", &k, "100"]);
                if self.chance(50) {
                    c.push("WITHVALUES".into());
                }
                (c, sorted)
            }
            59 => (s(&["HSCAN", &k, "0", "COUNT", "10000"]), ScanSorted),
            // sets
            60..=62 => {
                let mut c = s(&[self.pick(&["SADD", "SREM"]), &k, &m]);
                if self.chance(50) {
                    c.push(self.pick(MEMBERS).to_string());
                }
                (c, Exact)
            }
            63 => (s(&[self.pick(&["SCARD", "SMEMBERS"]), &k]), sorted),
            64 => (s(&[self.pick(&["SISMEMBER", "SMISMEMBER"]), &k, &m]), Exact),
            65 => (
                s(&[
                    self.pick(&["SPOP", "SRANDMEMBER"]),
                    &k,
                    self.pick(&["100", "0", "-1x", "x"]),
                ]),
                sorted,
            ),
            66 => (s(&["SMOVE", &k, &k2, &m]), Exact),
            67 => (
                s(&[self.pick(&["SINTER", "SUNION", "SDIFF"]), &k, &k2]),
                sorted,
            ),
            68 => (
                s(&[
                    self.pick(&["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]),
                    &k,
                    &k2,
                    &self.key(),
                ]),
                Exact,
            ),
            69 => {
                let mut c = s(&["SINTERCARD", self.pick(&["1", "2", "0", "3", "x"]), &k, &k2]);
                if self.chance(40) {
                    c.extend(s(&["LIMIT", self.pick(&["0", "1", "-1", "x"])]));
                }
                (c, Exact)
            }
            70 => (s(&["SSCAN", &k, "0", "COUNT", "10000"]), ScanSorted),
            // sorted sets
            71..=74 => {
                let mut c = s(&["ZADD", &k]);
                for _ in 0..self.rng.usize(..3) {
                    c.push(
                        self.pick(&["NX", "XX", "GT", "LT", "CH", "INCR"])
                            .to_string(),
                    );
                }
                c.push(f.clone());
                c.push(m.clone());
                if self.chance(30) {
                    c.push(self.pick(FLOATS).to_string());
                    c.push(self.pick(MEMBERS).to_string());
                }
                (c, Exact)
            }
            75 => (s(&["ZINCRBY", &k, &f, &m]), Exact),
            76 => (
                s(&[self.pick(&["ZREM", "ZSCORE", "ZRANK", "ZREVRANK"]), &k, &m]),
                Exact,
            ),
            77 => (s(&["ZMSCORE", &k, &m, "zz"]), Exact),
            78 => (s(&["ZCARD", &k]), Exact),
            79 => {
                let (a, b) = (self.score_bound(), self.score_bound());
                (
                    s(&[
                        self.pick(&[
                            "ZCOUNT",
                            "ZRANGEBYSCORE",
                            "ZREVRANGEBYSCORE",
                            "ZREMRANGEBYSCORE",
                        ]),
                        &k,
                        &a,
                        &b,
                    ]),
                    Exact,
                )
            }
            80 => {
                let (a, b) = (self.lex_bound(), self.lex_bound());
                (
                    s(&[
                        self.pick(&[
                            "ZLEXCOUNT",
                            "ZRANGEBYLEX",
                            "ZREVRANGEBYLEX",
                            "ZREMRANGEBYLEX",
                        ]),
                        &k,
                        &a,
                        &b,
                    ]),
                    Exact,
                )
            }
            81..=82 => {
                let kind = self.rng.u32(..3);
                let (a, b) = match kind {
                    0 => (i.clone(), j.clone()),
                    1 => (self.score_bound(), self.score_bound()),
                    _ => (self.lex_bound(), self.lex_bound()),
                };
                let mut c = s(&[self.pick(&["ZRANGE", "ZRANGE", "ZRANGESTORE"]), &k]);
                if c[0] == "ZRANGESTORE" {
                    c.push(k2.clone());
                }
                c.push(a);
                c.push(b);
                if kind == 1 || (kind == 0 && self.chance(10)) {
                    c.push("BYSCORE".into());
                } else if kind == 2 {
                    c.push("BYLEX".into());
                }
                if self.chance(30) {
                    c.push("REV".into());
                }
                if self.chance(30) {
                    c.extend(s(&[
                        "LIMIT",
                        self.pick(&["0", "1", "-1"]),
                        self.pick(&["1", "2", "-1", "0"]),
                    ]));
                }
                if self.chance(40) {
                    c.push("WITHSCORES".into());
                }
                (c, Exact)
            }
            83 => (s(&["ZREVRANGE", &k, &i, &j, "WITHSCORES"]), Exact),
            84 => (s(&["ZREMRANGEBYRANK", &k, &i, &j]), Exact),
            85 => {
                let mut c = s(&[self.pick(&["ZPOPMIN", "ZPOPMAX"]), &k]);
                if self.chance(50) {
                    c.push(i.clone());
                }
                (c, Exact)
            }
            86 => {
                let mut c = s(&[
                    "ZMPOP",
                    self.pick(&["1", "2", "0"]),
                    &k,
                    &k2,
                    self.pick(&["MIN", "MAX", "max", "foo"]),
                ]);
                if self.chance(50) {
                    c.extend(s(&["COUNT", self.pick(&["1", "3", "0"])]));
                }
                (c, Exact)
            }
            87 => (
                s(&[self.pick(&["BZPOPMIN", "BZPOPMAX"]), &k, "0.01"]),
                Exact,
            ),
            88 => {
                let mut c = s(&["ZRANDMEMBER", &k, "100"]);
                if self.chance(50) {
                    c.push("WITHSCORES".into());
                }
                (c, sorted)
            }
            89..=91 => {
                let op = self.pick(&[
                    "ZUNION",
                    "ZINTER",
                    "ZDIFF",
                    "ZUNIONSTORE",
                    "ZINTERSTORE",
                    "ZDIFFSTORE",
                ]);
                let mut c = s(&[op]);
                if op.ends_with("STORE") {
                    c.push(self.key());
                }
                c.extend(s(&[self.pick(&["2", "1", "0", "3"]), &k, &k2]));
                if self.chance(30) {
                    c.extend(s(&[
                        "WEIGHTS",
                        self.pick(&["2", "x", "-1"]),
                        self.pick(&["0.5", "1"]),
                    ]));
                }
                if self.chance(30) {
                    c.extend(s(&["AGGREGATE", self.pick(&["SUM", "MIN", "MAX", "AVG"])]));
                }
                if !op.ends_with("STORE") && self.chance(50) {
                    c.push("WITHSCORES".into());
                }
                (c, Exact)
            }
            92 => (s(&["ZINTERCARD", self.pick(&["2", "1"]), &k, &k2]), Exact),
            93 => (s(&["ZSCAN", &k, "0", "COUNT", "10000"]), ScanSorted),
            // transactions and databases
            94 => (s(&["WATCH", &k]), Exact),
            95 => (s(&["UNWATCH"]), Exact),
            96 => (s(&["SWAPDB", "0", self.pick(&["1", "0", "x"])]), Exact),
            97 => (
                s(&[if self.chance(10) { "FLUSHDB" } else { "PING" }]),
                Exact,
            ),
            _ => (s(&["EXISTS", &k]), Exact),
        };
        cmd
    }
}

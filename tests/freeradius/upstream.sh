#!/usr/bin/env bash
# A FreeRADIUS 3.2 upstream for radmfa's end-to-end tests (first factor `radius`):
# PAP against a users file, reply attributes on Accept, and one user whose first
# request gets a chained Access-Challenge.
#
#   bash tests/freeradius/upstream.sh DIR PORT SECRET [ACCT_PORT]
#   freeradius -f -d DIR            (add -X for a debug trace)
#
# Users:
#   ursula / ursula-pw   Accept with Filter-Id "upstream-acl" and Class "corp-staff"
#   victor / victor-pw   Accept, no attributes
#   tina / tina-pw       Accept with a VLAN and a Tunnel-Password (encrypted under SECRET)
#   mona / mona-pw       for MS-CHAPv2 (mschap module, MPPE keys in the Accept)
#   chris  / (none)      Access-Challenge "Upstream question: what is 6 times 7?" with a
#                        State; the answer "42" with that State is accepted (Class "chained")
# Replies always carry a Message-Authenticator. Status-Server is answered.
# With ACCT_PORT, Accounting-Requests on that port are written to DIR/log/detail
# (the detail module) and answered.
set -euo pipefail
dir=$1 port=$2 secret=$3 acct_port=${4:-}
mkdir -p "$dir/log" "$dir/run"
dir=$(cd "$dir" && pwd)
cp /etc/freeradius/3.0/dictionary "$dir/dictionary"
cat > "$dir/users" <<EOF
"ursula" Cleartext-Password := "ursula-pw"
	Filter-Id = "upstream-acl",
	Class = "corp-staff"

"victor" Cleartext-Password := "victor-pw"

"tina" Cleartext-Password := "tina-pw"
	Tunnel-Type = VLAN,
	Tunnel-Medium-Type = IEEE-802,
	Tunnel-Private-Group-Id = "42",
	Tunnel-Password = "tunnel-pw-7"

"mona" Cleartext-Password := "mona-pw"
EOF
cat > "$dir/radiusd.conf" <<EOF
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
confdir = $dir
raddbdir = $dir
modconfdir = $dir
logdir = $dir/log
run_dir = $dir/run
db_dir = $dir
libdir = /usr/lib/freeradius
radacctdir = $dir/log
pidfile = $dir/run/freeradius.pid
name = freeradius
correct_escapes = true
hostname_lookups = no
max_request_time = 30
cleanup_delay = 5
max_requests = 16384
log {
    destination = files
    file = $dir/log/radius.log
    colourise = no
}
security {
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = yes
}
thread pool {
    start_servers = 2
    max_servers = 4
    min_spare_servers = 1
    max_spare_servers = 2
    max_requests_per_server = 0
}
client radmfa {
    ipaddr = 127.0.0.1
    proto = udp
    secret = $secret
    require_message_authenticator = yes
    nas_type = other
}
modules {
    always reject {
        rcode = reject
    }
    always ok {
        rcode = ok
    }
    always handled {
        rcode = handled
    }
    pap {
        normalise = no
    }
    mschap {
        use_mppe = yes
        require_encryption = no
        require_strong = no
    }
    detail {
        filename = $dir/log/detail
        escape_filenames = no
        permissions = 0600
        header = "%t"
        locking = no
    }
    files {
        filename = $dir/users
        acctusersfile = $dir/users.acct
        preproxy_usersfile = $dir/users.preproxy
    }
}
instantiate {
}
server upstream {
    listen {
        type = auth
        ipaddr = 127.0.0.1
        port = $port
    }
$(if [ -n "$acct_port" ]; then printf '    listen {\n        type = acct\n        ipaddr = 127.0.0.1\n        port = %s\n    }\n' "$acct_port"; fi)
    preacct {
        ok
    }
    accounting {
        detail
        ok
    }
    authorize {
        # Status-Server (RFC 5997): radmfa check-config --connect and its
        # start-up checks ask whether the upstream is there.
        Autz-Type Status-Server {
            ok
        }
        if (&User-Name == "chris") {
            if (&State) {
                if ((&session-state:Tmp-String-2 == "asked") && (&User-Password == "42")) {
                    update reply {
                        &Class := "chained"
                    }
                    update control {
                        &Auth-Type := Accept
                    }
                }
                else {
                    reject
                }
            }
            else {
                update control {
                    &Auth-Type := upstream_challenge
                }
            }
        }
        else {
            files
            if (!ok) {
                reject
            }
            if (&MS-CHAP-Challenge) {
                update control {
                    &Auth-Type := MS-CHAP
                }
            }
            else {
                update control {
                    &Auth-Type := PAP
                }
            }
        }
    }
    authenticate {
        Auth-Type PAP {
            pap
        }
        Auth-Type MS-CHAP {
            mschap
        }
        Auth-Type upstream_challenge {
            update session-state {
                &Tmp-String-2 := "asked"
            }
            update reply {
                &Reply-Message := "Upstream question: what is 6 times 7?"
            }
            update control {
                &Response-Packet-Type := Access-Challenge
            }
            handled
        }
    }
    post-auth {
        update reply {
            &Message-Authenticator := 0x00000000000000000000000000000000
        }
        Post-Auth-Type REJECT {
            update reply {
                &Message-Authenticator := 0x00000000000000000000000000000000
            }
        }
        Post-Auth-Type Challenge {
            update reply {
                &Message-Authenticator := 0x00000000000000000000000000000000
            }
        }
    }
}
EOF
: > "$dir/users.acct"
: > "$dir/users.preproxy"

#!/bin/sh
# Runs inside the package's test root booted by systemd-nspawn (test-package.sh installs it as
# a oneshot unit ordered after mrsort.service): the installed service under a real systemd.
# Where test-package.sh put /srv/mrsort-probe/receiver (the config then has a receiver
# "scanner"), also the receiver unit: enabled with `systemctl enable --now`, its sandbox, then
# /srv/mrsort-probe/receiver-ready tells the host to send its series, and the probe waits for
# /srv/mrsort-probe/host-done before the package is reinstalled, removed and installed again.
# One line per check in /root/probe-results ("ok ..." or "FAIL ..."), then power off.
# POSIX sh: the root is a minimal Debian, and this is the shell its maintainer scripts use.
set -u

out=/root/probe-results
echo "started" > "$out"
ok() { echo "ok $*" >> "$out"; }
no() { echo "FAIL $*" >> "$out"; }
check() {
    what=$1; shift
    if "$@"; then ok "$what"; else no "$what"; fi
}
wait_for() {  # wait_for SECONDS COMMAND...
    limit=$1; shift; waited=0
    until "$@"; do
        waited=$((waited + 1)); [ "$waited" -ge "$limit" ] && return 1; sleep 1
    done
}
is_active() { [ "$(systemctl is-active mrsort.service)" = active ]; }
show() { systemctl show mrsort.service -p "$1" --value; }
# /tmp is a fresh tmpfs in the booted root and /root is private: the test puts the series and
# the package under /srv/mrsort-probe.
n_files=$(find /srv/mrsort-probe/series -type f | wc -l)
landed() {
    [ "$(find /var/lib/mrsort/sorted /var/lib/mrsort/review -type f -name '*.dcm' | wc -l)" -ge $((before + n_files)) ]
}

# Type=notify: "active" only once the agent has sent READY=1.
check "mrsort.service active after boot (READY=1 under Type=notify)" wait_for 90 is_active
check "mrsort.service enabled" [ "$(systemctl is-enabled mrsort.service)" = enabled ]
check "the generator's drop-in is loaded (ReadWritePaths has -/var/lib/mrsort/incoming)" \
    sh -c 'systemctl show mrsort.service -p ReadWritePaths --value | grep -q -- "-/var/lib/mrsort/incoming"'
check "watchdog armed (WatchdogUSec=1min)" [ "$(show WatchdogUSec)" = 1min ]
pid=$(show MainPID)
check "the agent runs as user mrsort" [ "$(stat -c %U "/proc/$pid")" = mrsort ]

# The sandbox, seen from inside the service's mount namespace.
uid=$(id -u mrsort); gid=$(id -g mrsort)
check "sandbox: /etc is read-only for the service" \
    sh -c "! nsenter -t $pid -m touch /etc/mrsort-probe 2>/dev/null"
check "sandbox: /usr is read-only for the service" \
    sh -c "! nsenter -t $pid -m touch /usr/mrsort-probe 2>/dev/null"
check "sandbox: the watched folder is writable for the service" \
    sh -c "nsenter -t $pid -m -S $uid -G $gid touch /var/lib/mrsort/incoming/.probe && rm -f /var/lib/mrsort/incoming/.probe"
check "sandbox: /home is hidden from the service" \
    sh -c "! nsenter -t $pid -m -S $uid -G $gid ls /home >/dev/null 2>&1"

# A series dropped by the group; `systemctl reload` while it is pending loses nothing.
before=$(find /var/lib/mrsort/sorted /var/lib/mrsort/review -type f -name '*.dcm' | wc -l)
check "a member of group mrsort drops $n_files files into /var/lib/mrsort/incoming" \
    runuser -u mrsort -- cp -r /srv/mrsort-probe/series /var/lib/mrsort/incoming/boot-probe-series
sleep 2
check "systemctl reload mrsort" systemctl reload mrsort.service
check "same process after reload" [ "$(show MainPID)" = "$pid" ]
check "the service sorted the $n_files files of the dropped series" wait_for 180 landed
check "incoming emptied" [ -z "$(find /var/lib/mrsort/incoming -type f)" ]
# journald keeps the agent's priorities: the reload is logged at notice, so -p notice finds it.
check "journal: the reload at priority notice (journalctl -u mrsort -p notice)" \
    sh -c 'journalctl -b -u mrsort.service -p notice --no-pager | grep -q "configuration reloaded"'
check "mrsort status works for root" sh -c 'mrsort status > /root/probe-status.log 2>&1'

# The DICOM receiver, a template instance the admin enables.
receiver=
if [ -f /srv/mrsort-probe/receiver ]; then
    receiver="mrsort-receiver@$(cat /srv/mrsort-probe/receiver).service"
fi
receiver_active() { [ "$(systemctl is-active "$receiver")" = active ]; }
rshow() { systemctl show "$receiver" -p "$1" --value; }
if [ -n "$receiver" ]; then
    check "$receiver neither enabled nor running before the admin enables it" \
        sh -c "! systemctl is-enabled -q $receiver && ! systemctl is-active -q $receiver"
    # Type=notify: `enable --now` returns once the receiver sent READY=1.
    check "systemctl enable --now $receiver" \
        sh -c "systemctl enable --now $receiver > /root/probe-receiver-enable.log 2>&1"
    check "$receiver active" receiver_active
    check "$receiver enabled" [ "$(systemctl is-enabled "$receiver")" = enabled ]
    check "$receiver: the generator's drop-in is loaded (ReadWritePaths has -/var/lib/mrsort/incoming)" \
        sh -c "systemctl show $receiver -p ReadWritePaths --value | grep -q -- -/var/lib/mrsort/incoming"
    check "$receiver: watchdog armed (WatchdogUSec=1min)" [ "$(rshow WatchdogUSec)" = 1min ]
    rpid=$(rshow MainPID)
    check "$receiver runs as user mrsort" [ "$(stat -c %U "/proc/$rpid")" = mrsort ]
    check "$receiver runs 'mrsort receive $(cat /srv/mrsort-probe/receiver) --config /etc/mrsort/mrsort.yaml'" \
        sh -c "tr '\\0' ' ' < /proc/$rpid/cmdline | grep -q 'mrsort receive $(cat /srv/mrsort-probe/receiver) --config /etc/mrsort/mrsort.yaml'"
    check "$receiver holds no capabilities (CapEff 0)" \
        sh -c "grep -Eq '^CapEff:[[:space:]]*0+$' /proc/$rpid/status"
    check "receiver sandbox: /etc is read-only" \
        sh -c "! nsenter -t $rpid -m touch /etc/mrsort-probe 2>/dev/null"
    check "receiver sandbox: the receiver's folder is writable" \
        sh -c "nsenter -t $rpid -m -S $uid -G $gid touch /var/lib/mrsort/incoming/.probe && rm -f /var/lib/mrsort/incoming/.probe"
    check "receiver sandbox: /home is hidden" \
        sh -c "! nsenter -t $rpid -m -S $uid -G $gid ls /home >/dev/null 2>&1"
    check "mrsort.service still active beside the receiver" is_active
    # The host sends now (test-package.sh checks what arrives, what is sorted and forwarded).
    echo ready > /srv/mrsort-probe/receiver-ready
    check "the host finished sending and checking (host-done)" wait_for 480 test -f /srv/mrsort-probe/host-done
    check "journal: the receiver logged the association from TESTSCU" \
        sh -c "journalctl -b -u $receiver --no-pager | grep -q \"association accepted from 'TESTSCU'\""
    check "journal: the receiver logged the refusal of calling AE title EVIL" \
        sh -c "journalctl -b -u $receiver --no-pager | grep -q \"calling AE title 'EVIL'\""
    check "$receiver still the same process" [ "$(rshow MainPID)" = "$rpid" ]

    # Upgrade path (dpkg -i over the installed package): postinst restarts running receivers,
    # so that they run the new binary.
    check "dpkg -i over the installed package (upgrade)" sh -c \
        'dpkg -i /srv/mrsort-probe/mrsort.deb > /root/probe-reinstall.log 2>&1'
    restarted() { receiver_active && [ "$(rshow MainPID)" != "$rpid" ] && [ "$(rshow MainPID)" != 0 ]; }
    check "the upgrade restarted $receiver (new MainPID)" wait_for 30 restarted
    check "mrsort.service active after the upgrade" wait_for 60 is_active
fi

# The maintainer scripts with a running systemd: remove stops the service, install starts it.
check "apt-get remove stops the service" sh -c \
    'DEBIAN_FRONTEND=noninteractive apt-get remove -y -q mrsort > /root/probe-remove.log 2>&1 && ! systemctl is-active -q mrsort.service'
if [ -n "$receiver" ]; then
    check "apt-get remove stops $receiver" sh -c "! systemctl is-active -q $receiver"
    check "remove keeps the admin's enablement of $receiver" test -L "/etc/systemd/system/multi-user.target.wants/$receiver"
fi
check "dpkg -i starts the service again" sh -c \
    'dpkg -i /srv/mrsort-probe/mrsort.deb > /root/probe-install.log 2>&1'
check "active again after install" wait_for 60 is_active
if [ -n "$receiver" ]; then
    check "dpkg -i starts the enabled $receiver again" wait_for 60 receiver_active
    check "systemctl stop $receiver: it exits 0 (Result=success)" sh -c \
        "systemctl stop $receiver && [ \"\$(systemctl show $receiver -p Result --value)\" = success ] && [ \"\$(systemctl show $receiver -p ExecMainStatus --value)\" = 0 ]"
    journalctl -b -u "$receiver" --no-pager > /root/probe-receiver-journal.log 2>&1
fi
check "systemctl stop: the agent drains and exits 0 (Result=success)" sh -c \
    'systemctl is-active -q mrsort.service && systemctl stop mrsort.service && [ "$(systemctl show mrsort.service -p Result --value)" = success ] && [ "$(systemctl show mrsort.service -p ExecMainStatus --value)" = 0 ]'

journalctl -b -u mrsort.service --no-pager > /root/probe-journal.log 2>&1
echo "done" >> "$out"
systemctl --no-block poweroff

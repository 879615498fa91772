# The MCP conformance suite (@modelcontextprotocol/conformance 0.1.13, the
# last release that runs on Node 20; a dependency in package.json) runs its
# "active" server scenarios against the endpoint's /mcp/s2, behind which
# t/interop/conformance-tools-server.mjs (the official SDK's McpServer with
# every fixture the scenarios call) is connected as reverse server s2.
#
# What runs is what `npx @modelcontextprotocol/conformance@0.1.13 server
# --url http://127.0.0.1:PORT/mcp/s2 --suite active --expected-failures
# t/interop/conformance-expected-failures.yml` runs, started with node from
# node_modules (no network).  The suite's exit status is 0 only when exactly
# the scenarios of the expected-failure list fail: a new failure and a
# listed scenario that passes both fail this test.  Its summary is printed
# (diag) with the "Total:" line.
#
# dns-rebinding-protection needs no extra server{}: the endpoint's Origin
# check refuses Host/Origin evil.example.com (a name this server{} is not
# configured with) with 403 and takes 127.0.0.1.

use lib 't/lib';
use Test::Nginx::Socket;
use Test::Nginx::MCP;

master_on();
workers(2);

run_tests();

__DATA__

=== TEST 1: the conformance suite's active server scenarios against /mcp/s2
--- http_config
reverse_mcp_zone rmcp:1m;
reverse_mcp_agent a1 { server s2 token=t2; }
--- config
location /ws { reverse_mcp_connector a1; }
location = /status { reverse_mcp_status; }
location /mcp { reverse_mcp_endpoint a1; }
--- test_code
my $suite = "$main::NodeModules/\@modelcontextprotocol/conformance";
my @missing = grep { !-f "$main::NodeModules/$_/package.json" }
              qw(@modelcontextprotocol/sdk @modelcontextprotocol/conformance
                 ws zod);
die "missing npm packages (@missing): run `npm ci` (`make deps` installs "
    . "node_modules only when there is none)\n" if @missing;

my $slog = "$servroot/logs/conformance-server.log";
my $srv = node_start($slog, 't/interop/conformance-tools-server.mjs',
                     '--url', "ws://127.0.0.1:$ServerPort/ws",
                     '--name', 's2', '--token', 't2');
ok(wait_until(sub {
    my $j = status_json();
    my ($a) = grep { $_->{name} eq 'a1' } @{ $j->{agents} };
    return grep { $_->{name} eq 's2' } @{ $a->{servers} || [] };
}, 15, 0.05), 'the fixture server registered as s2')
    or diag(slurp($slog));

my $clog = "$servroot/logs/conformance.log";
my $t0 = Time::HiRes::time();
my $pid = node_start($clog, "$suite/dist/index.js", 'server',
                     '--url', "http://127.0.0.1:$ServerPort/mcp/s2",
                     '--suite', 'active',
                     '--expected-failures',
                     't/interop/conformance-expected-failures.yml',
                     '--output-dir', "$servroot/conformance");
my $rc = node_wait($pid, 90);
my $out = slurp($clog);
my $took = Time::HiRes::time() - $t0;

my ($summary) = $out =~ /(=== SUMMARY ===.*)\z/s;
$summary //= $out;
$summary =~ s/\e\[[0-9;]*m//g;
diag("conformance suite (" . sprintf('%.1f', $took) . " s):\n$summary");

is($rc, 0, 'the suite exits 0: exactly the expected failures fail')
    or diag($out);
like($out, qr/^Total: \d+ passed, \d+ failed$/m, 'a "Total:" line');
like($out, qr/Baseline check passed/, 'Baseline check passed');
for my $s (qw(server-initialize ping logging-set-level tools-list
              server-sse-multiple-streams dns-rebinding-protection
              tools-call-with-progress tools-call-with-logging
              resources-list resources-read-text resources-read-binary
              resources-templates-read resources-subscribe
              resources-unsubscribe prompts-list prompts-get-simple
              prompts-get-with-args prompts-get-embedded-resource
              prompts-get-with-image completion-complete
              tools-call-sampling tools-call-elicitation
              elicitation-sep1034-defaults elicitation-sep1330-enums))
{
    like($out, qr/^\S+ \Q$s\E: [1-9]\d* passed, 0 failed$/m, "$s passes");
}
ok($took < 60, 'the suite took less than 60 s');

kill 'TERM', $srv;
ok(defined node_wait($srv, 5), 'the fixture server stopped');
--- no_error_log
[alert]
[crit]

# Network re-plugging and the guest IP channel, with real frames: VMs of the test guest attached to the
# test network server (tests/NetworkServer: a datagram switch that answers ARP and ping for its gateway and
# logs every frame with the sender's client socket path and MAC).

BeforeAll {
    Import-Module $env:MACVM_MODULE
    Import-Module "$PSScriptRoot/TestSupport.psm1" -Force
    $script:Store = New-TestStore
    $script:NetA = Start-TestNetwork -Path "$Store/a.sock" -Gateway 10.0.2.1
    $script:NetB = Start-TestNetwork -Path "$Store/b.sock" -Gateway 10.0.2.1
    $null = Import-TestGuest

    # Pings from the guest once its link is operationally up: after a re-plug the carrier shows at once, but
    # Linux sends nothing (its queue discipline drops) until its link watch has run, up to a second later.
    function Invoke-Ping([string] $Vm, [string] $Target, [int] $Count = 2) {
        $script = 'n=0; while [ "$(cat /sys/class/net/eth0/operstate)" != up ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n+1)); done; ' + "ping -c $Count -W 3 $Target"
        Invoke-MacVmGuestCommand -Name $Vm -ScriptText $script -TimeoutSec 30
    }
    function Get-Now { [DateTimeOffset]::UtcNow.ToUnixTimeMilliseconds() }
    function Get-Frames($Net, [string] $Client, [string] $Kind, [double] $Since = 0) {
        @(Get-TestNetworkFrame $Net | Where-Object { $_.Ms -ge $Since -and (-not $Client -or $_.Client -eq $Client) -and (-not $Kind -or $_.Kind -eq $Kind) })
    }
}

AfterAll {
    Remove-TestStore -Store $Store
    Stop-TestNetwork $NetA
    Stop-TestNetwork $NetB
}

Describe 'A VM on a test network' {
    BeforeAll {
        $script:Vm = New-MacVm -Name a -Image tiny -Network $NetA.SocketPath | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 60 -PassThru
    }

    It 'starts attached to the server, with its own client socket and MAC' {
        $Vm.Network.Kind | Should -Be 'Socket'
        $Vm.Network.SocketPath | Should -Be $NetA.SocketPath
        $Vm.Status.Network.ClientSocketPath | Should -Match '/macvm-\d+/net/a-[0-9a-f]{8}\.sock$'
        $Vm.MacAddress | Should -Match '^02(:[0-9a-f]{2}){5}$'
        $Vm.GuestIpAssigned | Should -BeFalse
    }

    It 'gets its IP from Set-MacVmGuestIp and pings the gateway' {
        $since = Get-Now
        $vm = Set-MacVmGuestIp -Name a -IPAddress 10.0.2.15 -PrefixLength 24 -Gateway 10.0.2.1 -Wait -TimeoutSec 60 -PassThru
        $vm.GuestIpAssigned | Should -BeTrue
        $vm.GuestIp.Address | Should -Be '10.0.2.15'
        $vm.GuestIp.SubnetMask | Should -Be '255.255.255.0'
        $vm.GuestIp.Gateway | Should -Be '10.0.2.1'
        (Invoke-MacVmGuestCommand -Name a -ScriptText 'ip -4 addr show eth0').Output | Should -Match 'inet 10\.0\.2\.15/24'
        $r = Invoke-Ping a 10.0.2.1
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $requests = Get-Frames $NetA -Client $Vm.Status.Network.ClientSocketPath -Kind icmp-echo-request -Since $since
        $requests.Count | Should -BeGreaterOrEqual 2
        $requests[0].Src | Should -Be $Vm.MacAddress
        $requests[0].From | Should -Be '10.0.2.15'
    }

    It 'loses the network when disconnected: no carrier, pings fail, no frame reaches the server' {
        $vm = Disconnect-MacVmNetwork -Name a -PassThru
        $vm.Network.Kind | Should -Be 'None'
        $since = Get-Now
        $r = Invoke-MacVmGuestCommand -Name a -ScriptText 'cat /sys/class/net/eth0/carrier; ping -c 2 -W 1 10.0.2.1'
        $r.ExitCode | Should -Not -Be 0
        $r.Output | Should -Match '^0'
        Get-Frames $NetA -Since $since | Should -BeNullOrEmpty
        (Get-MacVm -Name a).Network.Kind | Should -Be 'None'
    }

    It 'reaches a second server after Connect-MacVmNetwork, and the first one no longer' {
        $vm = Connect-MacVmNetwork -Name a -SocketPath $NetB.SocketPath -PassThru
        $vm.Network.SocketPath | Should -Be $NetB.SocketPath
        $since = Get-Now
        # Three pings: the ones that failed while unplugged left the guest's ARP entry for the gateway failing,
        # so the first echo of this run may be dropped inside the guest before the new resolution succeeds.
        $r = Invoke-Ping a 10.0.2.1 -Count 3
        $r.ExitCode | Should -Be 0 -Because $r.Output
        (Get-Frames $NetB -Client $vm.Status.Network.ClientSocketPath -Kind icmp-echo-request -Since $since).Count | Should -BeGreaterOrEqual 2 -Because $r.Output
        Get-Frames $NetA -Since $since | Should -BeNullOrEmpty
        # The guest kept its NIC: the same interface, the same address, no new device.
        (Invoke-MacVmGuestCommand -Name a -ScriptText 'ls /sys/class/net').Output.Split("`n", [StringSplitOptions]::RemoveEmptyEntries) | Should -Be @('eth0', 'lo')
    }

    It 'reaches the NAT gateway with -Nat (nothing leaves the machine)' {
        (Connect-MacVmNetwork -Name a -Nat -PassThru).Network.Kind | Should -Be 'Nat'
        # QEMU's NAT network is 10.0.2.0/24 with its gateway at 10.0.2.2: the guest's address fits it.
        $r = Invoke-Ping a 10.0.2.2
        $r.ExitCode | Should -Be 0 -Because $r.Output
    }

    It 'saves with NAT attached and restores without falling back to a cold boot' {
        $null = Save-MacVm -Name a -SnapshotName natsave
        $r = Restore-MacVmSnapshot -SnapshotName natsave -Name fromnat -Network None
        $r.Status.RestoredFrom | Should -Be 'natsave'
        $r.Status.RestoreFallbackReason | Should -BeNullOrEmpty
        $r.Network.Kind | Should -Be 'None'
        Remove-MacVm -Name fromnat -Force
    }

    It 'keeps its address across save and restore into a new VM attached to the server' {
        $null = Connect-MacVmNetwork -Name a -SocketPath $NetB.SocketPath
        $null = Save-MacVm -Name a -SnapshotName withip
        $b = Restore-MacVmSnapshot -SnapshotName withip -Name b -Network $NetA.SocketPath
        $b.Status.RestoreFallbackReason | Should -BeNullOrEmpty
        $b.Network.SocketPath | Should -Be $NetA.SocketPath
        $null = Wait-MacVm -Name b -Condition GuestAgentReady -TimeoutSec 30
        (Invoke-MacVmGuestCommand -Name b -ScriptText 'ip -4 addr show eth0').Output | Should -Match 'inet 10\.0\.2\.15/24'
        $since = Get-Now
        $r = Invoke-Ping b 10.0.2.1
        $r.ExitCode | Should -Be 0 -Because $r.Output
        (Get-Frames $NetA -Client $b.Status.Network.ClientSocketPath -Kind icmp-echo-request -Since $since).Count | Should -BeGreaterOrEqual 2
        Remove-MacVm -Name b -Force
    }

    AfterAll {
        Remove-MacVm -Name a -Force -ErrorAction Ignore
    }
}

Describe 'VMs restored from one snapshot, on one network' {
    BeforeAll {
        # Saved unplugged and without an address, as the seed prepares its snapshots.
        $null = New-MacVm -Name src -Image tiny | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 60
        $null = Save-MacVm -Name src -SnapshotName clean -Stop
        $script:Restored = @(Restore-MacVmSnapshot -SnapshotName clean -Name r -Count 2 -Network $NetA.SocketPath)
    }

    It 'each gets its own MAC and client socket' {
        $Restored.Count | Should -Be 2
        $Restored[0].MacAddress | Should -Not -Be $Restored[1].MacAddress
        $Restored[0].Status.Network.ClientSocketPath | Should -Not -Be $Restored[1].Status.Network.ClientSocketPath
    }

    It 'the agent keeps polling until an address is served, then applies it' {
        foreach ($r in $Restored) { $null = Wait-MacVm -Name $r.Name -Condition GuestAgentReady -TimeoutSec 30 }
        Start-Sleep -Seconds 2
        (Get-MacVm -Name r-1).GuestIpAssigned | Should -BeFalse
        (Invoke-MacVmGuestCommand -Name r-1 -ScriptText 'ip -4 addr show eth0').Output | Should -Not -Match 'inet '
        # The agent was told 'wait' all along and asked again: an address served now is applied.
        $one = Set-MacVmGuestIp -Name r-1 -IPAddress 10.0.2.21 -SubnetMask 255.255.255.0 -Gateway 10.0.2.1 -Wait -TimeoutSec 30 -PassThru
        $two = Set-MacVmGuestIp -Name r-2 -IPAddress 10.0.2.22 -PrefixLength 24 -Gateway 10.0.2.1 -Wait -TimeoutSec 30 -PassThru
        $one.GuestIp.MacAddress | Should -Be $one.MacAddress
        $two.GuestIp.MacAddress | Should -Be $two.MacAddress
        (Invoke-MacVmGuestCommand -Name r-2 -ScriptText 'cat /sys/class/net/eth0/address').Output.Trim() | Should -Be $two.MacAddress
    }

    It 'ping each other through the server' {
        $since = Get-Now
        $r = Invoke-Ping r-1 10.0.2.22
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $r = Invoke-Ping r-2 10.0.2.21
        $r.ExitCode | Should -Be 0 -Because $r.Output
        $mac1 = (Get-MacVm -Name r-1).MacAddress
        $mac2 = (Get-MacVm -Name r-2).MacAddress
        (Get-Frames $NetA -Kind icmp-echo-request -Since $since | Where-Object { $_.Src -eq $mac1 -and $_.Dst -eq $mac2 }).Count | Should -BeGreaterOrEqual 2
        (Get-Frames $NetA -Kind icmp-echo-request -Since $since | Where-Object { $_.Src -eq $mac2 -and $_.Dst -eq $mac1 }).Count | Should -BeGreaterOrEqual 2
    }

    It 'refuses a client id another VM holds, and leaves the VM where it was' {
        $taken = "taken-$([IO.Path]::GetRandomFileName().Substring(0, 6))"
        $one = Connect-MacVmNetwork -Name r-1 -SocketPath $NetA.SocketPath -ClientId $taken -PassThru
        $one.Status.Network.ClientSocketPath | Should -BeLike "*/net/$taken.sock"
        $before = (Get-MacVm -Name r-2).Status.Network
        $err = { Connect-MacVmNetwork -Name r-2 -SocketPath $NetB.SocketPath -ClientId $taken -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -BeLike 'ConnectMacVmNetworkNetworkFailed*'
        $err.Exception.Message | Should -BeLike "*$taken.sock*in use*"
        (Get-MacVm -Name r-2).Status.Network | Should -Be $before
        (Invoke-Ping r-2 10.0.2.1).ExitCode | Should -Be 0
    }

    AfterAll {
        Get-MacVm -Name r-*, src -ErrorAction Ignore | Remove-MacVm -Force
    }
}

Describe 'Bad network input' {
    BeforeAll {
        $null = New-MacVm -Name bad -Image tiny -NoStart
        # A stream socket (not a datagram one) and a regular file.
        $script:Stream = [System.Net.Sockets.Socket]::new([System.Net.Sockets.AddressFamily]::Unix, [System.Net.Sockets.SocketType]::Stream, [System.Net.Sockets.ProtocolType]::Unspecified)
        $Stream.Bind([System.Net.Sockets.UnixDomainSocketEndPoint]::new("$Store/stream.sock"))
        $Stream.Listen(1)
        Set-Content -Path "$Store/plain.file" -Value x
    }
    AfterAll {
        $Stream.Dispose()
    }

    It 'refuses <Case> with an error naming the value' -ForEach @(
        @{ Case = 'an IPv6 address'; Ip = 'fd00::5'; Prefix = 24; Gw = '10.0.2.1'; Named = 'fd00::5'; Says = 'IPv4 only' }
        @{ Case = 'a malformed address'; Ip = '10.0.2'; Prefix = 24; Gw = '10.0.2.1'; Named = '10.0.2'; Says = 'not an IPv4 address' }
        @{ Case = 'a non-contiguous mask'; Ip = '10.0.2.5'; Mask = '255.0.255.0'; Gw = '10.0.2.1'; Named = '255.0.255.0'; Says = 'not contiguous' }
        @{ Case = 'a gateway outside the subnet'; Ip = '10.0.2.5'; Prefix = 24; Gw = '10.0.3.1'; Named = '10.0.3.1'; Says = 'not inside the subnet' }
        @{ Case = 'the network address'; Ip = '10.0.2.0'; Prefix = 24; Gw = '10.0.2.1'; Named = '10.0.2.0'; Says = 'network address' }
        @{ Case = 'the broadcast address'; Ip = '10.0.2.255'; Prefix = 24; Gw = '10.0.2.1'; Named = '10.0.2.255'; Says = 'broadcast address' }
        @{ Case = 'a prefix too long for a gateway'; Ip = '10.0.2.5'; Prefix = 32; Gw = '10.0.2.1'; Named = '32'; Says = 'prefix length' }
    ) {
        $p = @{ Name = 'bad'; IPAddress = $Ip; Gateway = $Gw }
        if ($Mask) { $p.SubnetMask = $Mask } else { $p.PrefixLength = $Prefix }
        $err = { Set-MacVmGuestIp @p } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -BeLike 'SetMacVmGuestIpInvalidArgument*'
        $err.Exception.Message | Should -BeLike "*$Named*"
        $err.Exception.Message | Should -BeLike "*$Says*"
    }

    It 'refuses <Case>' -ForEach @(
        @{ Case = 'a socket path over the OS limit'; Path = '/tmp/' + ('x' * 120) + '.sock'; Id = 'ConnectMacVmNetworkInvalidArgument'; Says = 'limited to 107 bytes' }
        @{ Case = 'a missing server socket'; Path = 'MISSING'; Id = 'ConnectMacVmNetworkNetworkNotFound'; Says = 'no network socket' }
        @{ Case = 'a stream socket'; Path = 'STREAM'; Id = 'ConnectMacVmNetworkInvalidArgument'; Says = 'not a datagram socket' }
        @{ Case = 'a regular file'; Path = 'FILE'; Id = 'ConnectMacVmNetworkInvalidArgument'; Says = 'not a socket' }
    ) {
        $path = switch ($Path) { 'MISSING' { "$Store/none.sock" } 'STREAM' { "$Store/stream.sock" } 'FILE' { "$Store/plain.file" } default { $Path } }
        $err = { Connect-MacVmNetwork -Name bad -SocketPath $path } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -BeLike "$Id*"
        $err.Exception.Message | Should -BeLike "*$path*"
        $err.Exception.Message | Should -BeLike "*$Says*"
        (Get-MacVm -Name bad).Network.Kind | Should -Be 'None'
    }

    It 'refuses both -Nat and -SocketPath, and neither' {
        { Connect-MacVmNetwork -Name bad -Nat -SocketPath $NetA.SocketPath } | Should -Throw -ErrorId 'ConnectMacVmNetworkInvalidArgument*'
        { Connect-MacVmNetwork -Name bad } | Should -Throw -ErrorId 'ConnectMacVmNetworkInvalidArgument*'
    }

    It 'makes nothing when New-MacVm gets a network that is not there' {
        $err = { New-MacVm -Name ghost -Image tiny -Network "$Store/none.sock" } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -BeLike 'NewMacVmNetworkNotFound*'
        Get-MacVm -Name ghost -ErrorAction Ignore | Should -BeNullOrEmpty
        Get-ChildItem "$Store/vms" -Force | Where-Object Name -like '*ghost*' | Should -BeNullOrEmpty
    }

    It 'records the attachment of a stopped VM for its next start' {
        $vm = Connect-MacVmNetwork -Name bad -Nat -PassThru
        $vm.State | Should -Be 'Stopped'
        $vm.Network.Kind | Should -Be 'Nat'
        $null = Disconnect-MacVmNetwork -Name bad
        (Get-MacVm -Name bad).Network.Kind | Should -Be 'None'
    }

    It 'starts a VM unplugged, with a warning, when its network is gone by then' {
        $gone = Start-TestNetwork -Path "$Store/c.sock"
        try { $null = Connect-MacVmNetwork -Name bad -SocketPath $gone.SocketPath }
        finally { Stop-TestNetwork $gone }
        $vm = Start-MacVm -Name bad -WarningVariable warnings -WarningAction SilentlyContinue -PassThru
        $vm.Network.Kind | Should -Be 'None'
        "$warnings" | Should -BeLike "*could not be plugged into Socket:$($gone.SocketPath)*"
        $null = Stop-MacVm -Name bad -Force
        (Get-MacVm -Name bad).Configuration.Network.SocketPath | Should -Be $gone.SocketPath -Because 'the VM still wants that network at its next start'
        $null = Disconnect-MacVmNetwork -Name bad
    }

    It 'refuses Set-MacVmGuestIp on a stopped VM' {
        $err = { Set-MacVmGuestIp -Name bad -IPAddress 10.0.2.5 -PrefixLength 24 -Gateway 10.0.2.1 -ErrorAction Stop } | Should -Throw -PassThru
        $err.FullyQualifiedErrorId | Should -BeLike 'SetMacVmGuestIpNotRunning*'
    }
}

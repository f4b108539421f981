# The help of every MacVm cmdlet: it is complete (synopsis, description, examples, a description for
# every parameter), and every example in it runs for real against the test guest without an error.
#
# Needs $env:MACVM_MODULE (the built MacVm.psd1, with its en-US MAML from tools/New-MamlHelp.ps1) and
# $env:MACVM_GUEST_DIR (the test guest: tests/guest/build.sh).
#
# Examples run through Get-Help <cmdlet> -Examples, cmdlet by cmdlet, each cmdlet in a scratch store of
# its own (/tmp/macvm-test-*). The store is put into the state the example expects before each example
# ($Fixtures below: the image 'tiny', and VMs web1, web2, db1 in a given state); only what differs is
# changed, so a VM is booted only when an example needs it running and it is not.

BeforeDiscovery {
    if (-not $env:MACVM_MODULE) { throw 'Set $env:MACVM_MODULE to the path of the built MacVm.psd1.' }
    Import-Module $env:MACVM_MODULE
    $Cmdlets = foreach ($command in Get-Command -Module MacVm -CommandType Cmdlet | Sort-Object Name) {
        $help = Get-Help $command.Name -Examples
        $number = 0
        $examples = @(
            if ($help.PSObject.Properties['examples'] -and $help.examples) {
                foreach ($e in @($help.examples.example)) {
                    $number++
                    @{ Number = $number; Title = ($e.title -replace '^[-\s]+|[-\s]+$', '' -replace '^Example \d+:\s*', ''); Code = [string]$e.code }
                }
            })
        @{ Name = $command.Name; Examples = $examples }
    }
}

BeforeAll {
    Import-Module $env:MACVM_MODULE
    $script:OriginalHome = $env:MACVM_HOME
    $script:Stores = [System.Collections.Generic.List[string]]::new()
    # Network: $true in a fixture runs the test network server on lab.sock in the store, the current location.
    Import-Module "$PSScriptRoot/TestSupport.psm1" -Force
    $script:Networks = @{}
    $script:OriginalLocation = Get-Location

    # Import-MacVmImage's -TartPath examples read Tart's folders: synthetic Tart VMs in a TART_HOME of our own.
    Import-Module "$PSScriptRoot/TestSupport.psm1" -Force
    $script:OriginalTartHome = $env:TART_HOME
    $env:TART_HOME = "/tmp/macvm-test-tart-$([IO.Path]::GetRandomFileName().Replace('.', ''))"
    $oci = "$env:TART_HOME/cache/OCIs/ghcr.io/cirruslabs/macos-sonoma-base"
    $null = New-TestTartVm -Path "$oci/sha256:0123456789abcdef"
    $null = New-Item -ItemType SymbolicLink -Path "$oci/latest" -Target "$oci/sha256:0123456789abcdef"
    $null = New-TestTartVm -Path "$env:TART_HOME/vms/sonoma-dev"

    # What the store holds before each example of a cmdlet: one spec for all its examples, or one per
    # example (the last one goes on for later examples). Image: whether the image 'tiny' exists
    # (default: yes). Vms: the VMs that exist, each Stopped, Running (with the guest agent up) or
    # Paused; any other VM is removed. A cmdlet not listed gets the image and no VMs.
    $script:Fixtures = @{
        'Import-MacVmImage' = @(@{ Image = $false }, @{ Image = $false }, @{ Image = $true })
        'Remove-MacVmImage' = @(@{}, @{}, @{ Vms = [ordered]@{ web1 = 'Stopped' } })
        'Get-MacVm'         = @{ Vms = [ordered]@{ web1 = 'Running'; web2 = 'Stopped'; db1 = 'Stopped' } }
        'Start-MacVm'       = @(
            @{ Vms = [ordered]@{ web1 = 'Stopped' } }
            @{ Vms = [ordered]@{ web1 = 'Running'; web2 = 'Stopped' } })
        'Stop-MacVm'        = @(
            @{ Vms = [ordered]@{ web1 = 'Running' } }
            @{ Vms = [ordered]@{ web1 = 'Stopped'; web2 = 'Running' } }
            @{ Vms = [ordered]@{ db1 = 'Running' } })
        'Suspend-MacVm'     = @{ Vms = [ordered]@{ web1 = 'Running' } }
        'Resume-MacVm'      = @{ Vms = [ordered]@{ web1 = 'Paused' } }
        'Remove-MacVm'      = @{ Vms = [ordered]@{ web1 = 'Stopped'; web2 = 'Stopped'; db1 = 'Running' } }
        'Wait-MacVm'        = @(
            @{ Vms = [ordered]@{ web1 = 'Stopped' } }
            @{ Vms = [ordered]@{ web1 = 'Running' } })
        'Test-MacVmGuest'   = @{ Vms = [ordered]@{ web1 = 'Running' } }
        'Save-MacVm'        = @{ Vms = [ordered]@{ web1 = 'Running' } }
        'Invoke-MacVmGuestCommand' = @{ Vms = [ordered]@{ web1 = 'Running' } }
        'Get-MacVmScreenshot' = @(
            @{ Vms = [ordered]@{ web1 = 'Running' } }
            @{ Vms = [ordered]@{ web1 = 'Running' } }
            @{ Vms = [ordered]@{ web1 = 'Running'; web2 = 'Paused' } }
            @{ Vms = [ordered]@{ web1 = 'Running' } }
            @{ Vms = [ordered]@{} })
        'Restore-MacVmSnapshot' = @{ Snapshots = @('base'); Network = $true }
        'Connect-MacVmNetwork' = @{ Vms = [ordered]@{ web1 = 'Running'; web2 = 'Running' }; Network = $true }
        'Disconnect-MacVmNetwork' = @{ Vms = [ordered]@{ web1 = 'Running' } }
        'Set-MacVmGuestIp'  = @{ Vms = [ordered]@{ web1 = 'Running' }; Network = $true }
        'Get-MacVmSnapshot' = @{ Snapshots = @('base') }
        'Remove-MacVmSnapshot' = @{ Snapshots = @('base') }
    }

    function Get-FixtureSpec([string] $Cmdlet, [int] $Number) {
        $entry = $Fixtures[$Cmdlet]
        if ($null -eq $entry) { return @{} }
        if ($entry -is [array]) { return $entry[[Math]::Min($Number, $entry.Count) - 1] }
        $entry
    }

    function New-ScratchStore {
        # Short on purpose: unix socket paths (vms/<name>/control.sock) are limited to 108 bytes.
        $run = if ($env:MACVM_TEST_RUN) { "$($env:MACVM_TEST_RUN)-" } else { '' }
        $path = "/tmp/macvm-test-$run$([IO.Path]::GetRandomFileName().Replace('.', '').Substring(0, 8))"
        $script:Stores.Add($path)
        $env:MACVM_HOME = $path
        $path
    }

    function Import-TinyImage {
        $g = $env:MACVM_GUEST_DIR
        $cmdline = (Get-Content -Raw (Join-Path $g 'guest.json') | ConvertFrom-Json).cmdline
        $null = Import-MacVmImage -Name tiny -Kernel $g/vmlinux -Initrd $g/initramfs.cpio -Disk $g/disk.qcow2 `
            -KernelCommandLine $cmdline -GuestAgent -ReadyMarker MACVM-GUEST-READY
    }

    # Puts the current store into the state $Spec describes, changing only what differs. Snapshots:
    # the snapshots that exist (saved from a throw-away VM); any other snapshot is removed.
    function Set-Fixture([hashtable] $Spec) {
        $ErrorActionPreference = 'Stop'
        if ($Spec.Network) {
            $null = New-Item -ItemType Directory -Force -Path $env:MACVM_HOME
            if (-not $Networks[$env:MACVM_HOME]) { $Networks[$env:MACVM_HOME] = Start-TestNetwork -Path (Join-Path $env:MACVM_HOME 'lab.sock') }
            Set-Location -LiteralPath $env:MACVM_HOME
        }
        $wantImage = -not $Spec.ContainsKey('Image') -or $Spec.Image
        $vms = if ($Spec.Vms) { $Spec.Vms } else { [ordered]@{} }
        foreach ($vm in @(Get-MacVm)) {
            # A VM an example left Failed is made again rather than trusted.
            if (-not $vms.Contains($vm.Name) -or $vm.State -eq 'Failed') { Remove-MacVm -Name $vm.Name -Force }
        }
        $image = Get-MacVmImage -Name tiny -ErrorAction Ignore
        if ($wantImage -and -not $image) { Import-TinyImage }
        elseif (-not $wantImage -and $image) { Remove-MacVmImage -Name tiny -Force }
        $snapshots = @(if ($Spec.Snapshots) { $Spec.Snapshots })
        foreach ($sn in @(Get-MacVmSnapshot)) { if ($sn.Name -notin $snapshots) { Remove-MacVmSnapshot -Name $sn.Name -Force } }
        foreach ($sn in $snapshots) {
            if (Get-MacVmSnapshot -Name $sn -ErrorAction Ignore) { continue }
            $null = New-MacVm -Name snapsrc -Image tiny | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 60
            $null = Save-MacVm -Name snapsrc -SnapshotName $sn
            Remove-MacVm -Name snapsrc -Force
        }
        foreach ($name in $vms.Keys) {
            $want = $vms[$name]
            $vm = Get-MacVm -Name $name -ErrorAction Ignore
            if (-not $vm) { $vm = New-MacVm -Name $name -Image tiny -NoStart }
            $state = [string]$vm.State
            if ($want -eq 'Stopped') {
                if ($state -ne 'Stopped') { $null = Stop-MacVm -Name $name -Force }
                continue
            }
            if ($state -eq 'Paused' -and $want -eq 'Running') { Resume-MacVm -Name $name }
            elseif ($state -eq 'Stopped') { Start-MacVm -Name $name }
            if ($state -ne 'Paused') { $null = Wait-MacVm -Name $name -State Running -Condition GuestAgentReady -TimeoutSec 60 }
            if ($want -eq 'Paused' -and $state -ne 'Paused') { Suspend-MacVm -Name $name }
        }
    }

    # Processes (hosts, QEMU) whose command line mentions one of the scratch stores.
    function Get-StoreProcess([string[]] $Store) {
        foreach ($p in Get-Process) {
            $cmdline = Get-Content -Raw "/proc/$($p.Id)/cmdline" -ErrorAction Ignore
            if (-not $cmdline) { continue }
            foreach ($s in $Store) { if ($cmdline.Contains("$s/")) { $p; break } }
        }
    }

    # Removes every VM of the store (killing the running ones), then anything left, then the store.
    function Remove-ScratchStore([string] $Path) {
        if (-not $Path) { return }
        Set-Location -LiteralPath $OriginalLocation
        if ($Networks[$Path]) { Stop-TestNetwork $Networks[$Path]; $Networks.Remove($Path) }
        $env:MACVM_HOME = $Path
        try { Get-MacVm -ErrorAction SilentlyContinue | Remove-MacVm -Force -Confirm:$false -ErrorAction SilentlyContinue }
        catch { Write-Warning "Removing the VMs of '$Path' failed: $_" }
        Get-StoreProcess $Path | ForEach-Object {
            Write-Warning "Killing leftover process $($_.Id) ($($_.ProcessName)) of '$Path'."
            Stop-Process -Id $_.Id -Force -ErrorAction SilentlyContinue
        }
        Remove-Item -LiteralPath $Path -Recurse -Force -ErrorAction SilentlyContinue
        $env:MACVM_HOME = $OriginalHome
    }
}

AfterAll {
    foreach ($s in $Stores) { if (Test-Path -LiteralPath $s) { Remove-ScratchStore $s } }
    $env:MACVM_HOME = $OriginalHome
    if ($env:TART_HOME -like '/tmp/macvm-test-tart-*') { Remove-Item -LiteralPath $env:TART_HOME -Recurse -Force -ErrorAction SilentlyContinue }
    $env:TART_HOME = $script:OriginalTartHome
}

Describe 'Help of <Name>' -ForEach $Cmdlets {
    BeforeAll {
        $help = Get-Help $Name -Full
        $command = Get-Command $Name
    }

    It 'has a synopsis written for it' {
        $help.Synopsis | Should -Not -BeNullOrEmpty
        # Without help, Get-Help makes the synopsis from the syntax: "Name [-Parameter] <type> ...".
        $help.Synopsis.Trim() | Should -Not -Match "^$([regex]::Escape($Name))(\s|$)"
    }

    It 'has a description' {
        $text = if ($help.PSObject.Properties['description'] -and $help.description) { ($help.description.Text -join '').Trim() } else { '' }
        $text | Should -Not -BeNullOrEmpty
    }

    It 'has at least one example with code' {
        $withCode = @(if ($help.PSObject.Properties['examples'] -and $help.examples) { $help.examples.example | Where-Object { "$($_.code)".Trim() } })
        $withCode.Count | Should -BeGreaterOrEqual 1
    }

    It 'describes every parameter' {
        $common = [System.Management.Automation.PSCmdlet]::CommonParameters
        $described = @{}
        if ($help.PSObject.Properties['parameters'] -and $help.parameters) {
            foreach ($p in @($help.parameters.parameter)) {
                $text = if ($p.PSObject.Properties['description'] -and $p.description) { ($p.description.Text -join '').Trim() } else { '' }
                if ($text) { $described[$p.name] = $text }
            }
        }
        $missing = @($command.Parameters.Keys | Where-Object { $_ -notin $common -and -not $described.ContainsKey($_) })
        $missing | Should -BeNullOrEmpty -Because 'every parameter needs a description in the help'
    }
}

Describe 'Examples of <Name>' -ForEach $Cmdlets {
    BeforeAll {
        if (-not $env:MACVM_GUEST_DIR -or -not (Test-Path (Join-Path $env:MACVM_GUEST_DIR 'guest.json'))) {
            throw "Set `$env:MACVM_GUEST_DIR to the test guest's folder (tests/guest/build.sh builds it); it is '$env:MACVM_GUEST_DIR'."
        }
        $store = New-ScratchStore
    }

    AfterAll {
        Remove-ScratchStore $store
    }

    It 'Example <Number> runs: <Title>' -ForEach $Examples {
        $env:MACVM_HOME = $store
        Set-Fixture (Get-FixtureSpec $Name $Number)

        $ErrorActionPreference = 'Stop'
        $example = [scriptblock]::Create($Code)
        $Error.Clear()
        try {
            $output = & $example | Out-String -Width 200
        }
        catch {
            throw "Example $Number of $Name failed: $($_.FullyQualifiedErrorId): $_`n--- code ---`n$Code"
        }
        $errors = @($Error | ForEach-Object { "$_" })
        $errors | Should -BeNullOrEmpty -Because "example $Number of $Name should write no error (output: $output)"
    }
}

Describe 'After the examples' {
    It 'leaves no VM process behind' {
        $left = @(Get-StoreProcess $Stores)
        $left | ForEach-Object { Stop-Process -Id $_.Id -Force -ErrorAction SilentlyContinue }
        $left.Id | Should -BeNullOrEmpty -Because 'every example VM should be removed with its store'
    }
}

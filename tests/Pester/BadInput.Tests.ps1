#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.7.1' }
# Bad input gets a clear error naming the thing and the fix, and leaves nothing half-made on disk.

BeforeAll {
    Import-Module $env:MACVM_MODULE -Force
    Import-Module "$PSScriptRoot/TestSupport.psm1" -Force
    $script:Store = New-TestStore
    $null = Import-TestGuest -Name tiny

    # Everything under vms/ (hidden staging folders too): must not change when a command fails.
    function Get-VmFolders { @(Get-ChildItem -Force "$script:Store/vms" | Select-Object -ExpandProperty Name) }
}

AfterAll {
    Remove-TestStore -Store $script:Store
}

Describe 'New-MacVm refuses bad input' {
    BeforeEach { $script:Before = Get-VmFolders }
    AfterEach { Get-VmFolders | Should -Be $script:Before -Because 'a failed New-MacVm leaves nothing on disk' }

    It 'names the unknown image and how to list images' {
        { New-MacVm -Name x1 -Image nosuchimage -ErrorAction Stop } |
            Should -Throw -ErrorId 'NewMacVmImageNotFound,MacVm.Cmdlets.Commands.NewMacVmCommand' -ExpectedMessage "*No image named 'nosuchimage'*Get-MacVmImage*"
    }

    It 'refuses the name <Label> saying why' -ForEach @(
        @{ Label = 'a/b'; Name = 'a/b'; Why = '*path separator*' }
        @{ Label = '..'; Name = '..'; Why = "*'..'*" }
        @{ Label = 'two words'; Name = 'two words'; Why = '*white space*' }
        @{ Label = 'bell + BEL'; Name = "bell`a"; Why = '*control character*' }
        @{ Label = '65 x'; Name = ('x' * 65); Why = '*65 characters; the limit is 64*' }
    ) {
        { New-MacVm -Name $Name -Image tiny -ErrorAction Stop } |
            Should -Throw -ErrorId 'NewMacVmInvalidArgument,MacVm.Cmdlets.Commands.NewMacVmCommand' -ExpectedMessage $Why
    }

    It 'refuses a CPU count or memory size out of range' {
        { New-MacVm -Name x2 -Image tiny -CpuCount 0 } | Should -Throw -ErrorId 'ParameterArgumentValidationError,MacVm.Cmdlets.Commands.NewMacVmCommand'
        { New-MacVm -Name x2 -Image tiny -CpuCount 65 } | Should -Throw -ErrorId 'ParameterArgumentValidationError,MacVm.Cmdlets.Commands.NewMacVmCommand'
        { New-MacVm -Name x2 -Image tiny -MemoryMB 16 } | Should -Throw -ErrorId 'ParameterArgumentValidationError,MacVm.Cmdlets.Commands.NewMacVmCommand'
        { New-MacVm -Name x2 -Image tiny -MemoryMB 1000000 -ErrorAction Stop } |
            Should -Throw -ErrorId 'NewMacVmInvalidArgument,MacVm.Cmdlets.Commands.NewMacVmCommand' -ExpectedMessage "*MemoryMB 1000000 is more than this machine's*"
    }

    It 'says how to install QEMU when it is missing' {
        $path = $env:PATH
        try {
            $env:PATH = '/nonexistent'
            { New-MacVm -Name x3 -Image tiny -ErrorAction Stop } |
                Should -Throw -ErrorId 'NewMacVmQemuNotInstalled,MacVm.Cmdlets.Commands.NewMacVmCommand' -ExpectedMessage "*qemu-system-x86_64' was not found on PATH*apt-get install qemu-system-x86*"
        }
        finally { $env:PATH = $path }
    }

    It 'refuses an accelerator this OS does not have' {
        { New-MacVm -Name x4 -Image tiny -Accelerator Hvf -ErrorAction Stop } |
            Should -Throw -ErrorId 'NewMacVmAcceleratorUnavailable,MacVm.Cmdlets.Commands.NewMacVmCommand' -ExpectedMessage '*only on macOS*Tcg*'
    }

    It 'fails a guest that shows no sign of life through the boot watchdog, naming the fix' {
        # The same guest with its console on the screen instead of the serial port, and no agent.
        $null = Import-TestGuest -Name mute -NoAgent -CommandLine 'console=tty0 quiet panic=-1'
        try {
            { New-MacVm -Name silent -Image mute -BootTimeoutSec 4 -ErrorAction Stop } |
                Should -Throw -ErrorId 'NewMacVmBootFailed,MacVm.Cmdlets.Commands.NewMacVmCommand' -ExpectedMessage '*Boot watchdog: the guest showed no sign of life*within 4 s*'
            Get-StoreProcess -Store $script:Store | Should -BeNullOrEmpty
        }
        finally { Remove-MacVmImage mute -Confirm:$false }
    }

    It 'says when KVM is requested but cannot work here' {
        if (-not (Test-Path /dev/kvm)) {
            { New-MacVm -Name x5 -Image tiny -Accelerator Kvm -ErrorAction Stop } |
                Should -Throw -ErrorId 'NewMacVmAcceleratorUnavailable,MacVm.Cmdlets.Commands.NewMacVmCommand' -ExpectedMessage '*/dev/kvm does not exist*'
            return
        }
        # Where KVM exists it may still hang (nested virtualization): then the watchdog must say so.
        $vm = $null
        try { $vm = New-MacVm -Name x5 -Image tiny -Accelerator Kvm -BootTimeoutSec 10 -ErrorAction Stop }
        catch {
            $_.FullyQualifiedErrorId | Should -BeLike 'NewMacVmBootFailed,*'
            $_.Exception.Message | Should -BeLike "*accelerator 'kvm' may not work on this machine*-Accelerator Tcg*"
        }
        if ($vm) { $vm.Accelerator | Should -Be 'kvm'; Remove-MacVm x5 -Force -Confirm:$false }
    }

    It 'quotes the host log when the host cannot start' {
        $old = $env:MACVM_HOST_PATH
        try {
            $env:MACVM_HOST_PATH = '/bin/false'
            { New-MacVm -Name x6 -Image tiny -ErrorAction Stop } |
                Should -Throw -ErrorId 'NewMacVmHostFailed,MacVm.Cmdlets.Commands.NewMacVmCommand' -ExpectedMessage '*host process*exited with code 1 while starting*'
        }
        finally { $env:MACVM_HOST_PATH = $old }
    }

    It 'quotes what QEMU said when the hypervisor cannot start' {
        $g = Get-TestGuest
        $junk = Join-Path $script:Store 'junk-kernel'
        [IO.File]::WriteAllBytes($junk, [byte[]](1..200))
        $null = Import-MacVmImage -Name broken -Kernel $junk -Initrd $g.Initrd -KernelCommandLine 'console=ttyS0'
        try {
            $err = { New-MacVm -Name x7 -Image broken -ErrorAction Stop } | Should -Throw -ErrorId 'NewMacVmBootFailed,MacVm.Cmdlets.Commands.NewMacVmCommand' -PassThru
            $err.Exception.Message | Should -BeLike '*QEMU said:*'
            $err.Exception.Message | Should -BeLike '*Last lines of*host.log*'
        }
        finally { Remove-MacVmImage broken -Confirm:$false }
    }

    It 'refuses a name that is taken, and says how to free it' {
        $null = New-MacVm -Name taken -Image tiny -NoStart
        $script:Before = Get-VmFolders
        { New-MacVm -Name taken -Image tiny -ErrorAction Stop } |
            Should -Throw -ErrorId 'NewMacVmNameTaken,MacVm.Cmdlets.Commands.NewMacVmCommand' -ExpectedMessage "*already exists*Remove-MacVm -Name taken*"
    }
}

Describe 'Store problems' {
    It 'says the store is not writable and how to choose another' {
        $old = $env:MACVM_HOME
        try {
            $env:MACVM_HOME = '/proc/macvm-store'
            { New-MacVm -Name x8 -Image tiny -ErrorAction Stop } |
                Should -Throw -ErrorId 'NewMacVmStoreNotWritable,MacVm.Cmdlets.Commands.NewMacVmCommand' -ExpectedMessage "*store '/proc/macvm-store' is not writable*MACVM_HOME*"
        }
        finally { $env:MACVM_HOME = $old }
    }

    It 'runs a VM whose store is too deep for socket paths, with its sockets in a short runtime folder' {
        $old = $env:MACVM_HOME
        $deep = Join-Path $script:Store ('deep-' + ('d' * 40) + '/' + ('e' * 40))
        try {
            $env:MACVM_HOME = $deep
            $null = Import-TestGuest -Name tiny
            $vm = New-MacVm -Name deepvm -Image tiny
            "$($vm.Path)/control.sock".Length | Should -BeGreaterThan 107
            ($vm | Wait-MacVm -Condition GuestAgentReady -TimeoutSec 30 -PassThru | Test-MacVmGuest).RoundTripMs | Should -BeGreaterThan 0
            Remove-MacVm deepvm -Force -Confirm:$false
        }
        finally {
            Get-MacVm -ErrorAction Ignore | Remove-MacVm -Force -Confirm:$false
            $env:MACVM_HOME = $old
        }
    }

    It 'names the socket path limit when not even the runtime folder fits' {
        $old = $env:MACVM_HOME; $oldTmp = $env:TMPDIR
        try {
            $env:MACVM_HOME = Join-Path $script:Store ('deep-' + ('d' * 40) + '/' + ('e' * 40))
            $env:TMPDIR = '/tmp/' + ('t' * 100)
            { New-MacVm -Name toodeep -Image tiny -ErrorAction Stop } |
                Should -Throw -ErrorId 'NewMacVmPathTooLong,MacVm.Cmdlets.Commands.NewMacVmCommand' -ExpectedMessage '*107-byte limit of unix socket paths*'
        }
        finally { $env:MACVM_HOME = $old; $env:TMPDIR = $oldTmp }
    }
}

Describe 'Other commands' {
    It 'reports each missing VM and goes on with the others' {
        $null = New-MacVm -Name present -Image tiny -NoStart
        $found = Get-MacVm -Name missing1, present, missing2 -ErrorVariable errs -ErrorAction SilentlyContinue
        $found.Name | Should -Be 'present'
        $errs.Count | Should -Be 2
        $errs[0].FullyQualifiedErrorId | Should -Be 'GetMacVmNotFound,MacVm.Cmdlets.Commands.GetMacVmCommand'
        $errs[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $errs[0].TargetObject | Should -Be 'missing1'
        Remove-MacVm present -Confirm:$false
    }

    It 'refuses to remove a running VM without -Force, and keeps it' {
        $null = New-MacVm -Name busy -Image tiny
        { Remove-MacVm busy -Confirm:$false -ErrorAction Stop } |
            Should -Throw -ErrorId 'RemoveMacVmVmRunning,MacVm.Cmdlets.Commands.RemoveMacVmCommand' -ExpectedMessage '*Stop it first*-Force*'
        (Get-MacVm busy).State | Should -Be 'Running'
        Remove-MacVm busy -Force
        Get-MacVm busy -ErrorAction Ignore | Should -BeNullOrEmpty
    }

    It 'refuses to remove an image that VMs are built on, naming them' {
        $null = New-MacVm -Name user1 -Image tiny -NoStart
        { Remove-MacVmImage tiny -Confirm:$false -ErrorAction Stop } |
            Should -Throw -ErrorId 'RemoveMacVmImageImageInUse,MacVm.Cmdlets.Commands.RemoveMacVmImageCommand' -ExpectedMessage "*in use by VM(s)*'user1'*"
        Get-MacVmImage tiny | Should -Not -BeNullOrEmpty
        Remove-MacVm user1 -Confirm:$false
    }

    It 'refuses to import a file that does not exist, leaving no image behind' {
        { Import-MacVmImage -Name ghost -Kernel /nonexistent/vmlinux -ErrorAction Stop } |
            Should -Throw -ErrorId 'ImportMacVmImageInvalidArgument,MacVm.Cmdlets.Commands.ImportMacVmImageCommand' -ExpectedMessage "*-Kernel '/nonexistent/vmlinux' does not exist*"
        Get-ChildItem -Force "$script:Store/images" | Where-Object Name -like '*ghost*' | Should -BeNullOrEmpty
    }

    It 'refuses an image name that is taken' {
        $g = Get-TestGuest
        { Import-MacVmImage -Name tiny -Kernel $g.Kernel -ErrorAction Stop } |
            Should -Throw -ErrorId 'ImportMacVmImageNameTaken,MacVm.Cmdlets.Commands.ImportMacVmImageCommand' -ExpectedMessage '*Remove-MacVmImage -Name tiny*'
    }

    It 'records a content digest for the image' {
        $image = Get-MacVmImage tiny
        $image.Digest | Should -Match '^sha256:[0-9a-f]{64}$'
        $g = Get-TestGuest
        $null = Import-MacVmImage -Name tiny2 -Kernel $g.Kernel -Initrd $g.Initrd -Disk $g.Disk -KernelCommandLine $g.CommandLine -GuestAgent
        (Get-MacVmImage tiny2).Digest | Should -Be $image.Digest -Because 'the same files give the same digest'
        Remove-MacVmImage tiny2 -Confirm:$false
    }

    It 'Wait-MacVm needs something to wait for' {
        { Wait-MacVm -Name anything -ErrorAction Stop } | Should -Throw -ErrorId 'WaitMacVmNothingToWaitFor,MacVm.Cmdlets.Commands.WaitMacVmCommand'
    }
}

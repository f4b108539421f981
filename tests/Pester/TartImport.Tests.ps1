#Requires -Modules @{ ModuleName = 'Pester'; ModuleVersion = '5.7.1' }
# Import-MacVmImage -TartPath: a Tart macOS VM (VM folder or OCI cache entry) becomes a macOS image for the
# Apple driver. Runs on Linux for real, with synthetic Tart folders (small sparse files).

BeforeAll {
    Import-Module $env:MACVM_MODULE -Force
    Import-Module "$PSScriptRoot/TestSupport.psm1" -Force
    $script:Store = New-TestStore
    $script:Tart = Join-Path $script:Store 'tart-home'
    function Get-ImageFolders { @(Get-ChildItem -Force "$script:Store/images" -ErrorAction Ignore | Select-Object -ExpandProperty Name) }
}

AfterAll {
    Remove-TestStore -Store $script:Store
}

Describe 'Import-MacVmImage -TartPath' {
    It 'imports a Tart VM folder as a macOS image with its identity files' {
        $vm = New-TestTartVm -Path "$script:Tart/vms/sonoma-base" -DiskMB 256
        $image = Import-MacVmImage -Name sonoma -TartPath $vm
        $image.Kind | Should -Be 'MacOS'
        $image.Disk | Should -Be 'disk.img'
        $image.DiskFormat | Should -Be 'raw'
        $image.Source | Should -Be "tart:$vm"
        $dir = "$script:Store/images/sonoma"
        [IO.File]::ReadAllBytes("$dir/machine-identifier") | Should -Be ([byte[]](1..16))
        Get-Content -Raw "$dir/hardware-model" | Should -Be 'synthetic hardware model'
        Get-Content -Raw "$dir/auxiliary-storage" | Should -Be 'synthetic nvram'
        (Get-Item "$dir/disk.img").Length | Should -Be 256MB
        # The copy keeps the holes: a mostly empty disk stays small on disk.
        [long](& stat -c '%b' "$dir/disk.img") * 512 | Should -BeLessThan 4MB
        (Get-FileHash "$dir/disk.img").Hash | Should -Be (Get-FileHash "$vm/disk.img").Hash
        $image.Digest | Should -Match '^sha256:[0-9a-f]{64}$'
        (Get-MacVmImage -Name sonoma).Kind | Should -Be 'MacOS'
    }

    It 'imports an entry of Tart''s OCI cache through its tag link, with the same digest as the same VM' {
        $digestDir = "$script:Tart/cache/OCIs/ghcr.io/cirruslabs/macos-sonoma-base/sha256:abc"
        $null = New-TestTartVm -Path $digestDir -DiskMB 256
        $tag = "$script:Tart/cache/OCIs/ghcr.io/cirruslabs/macos-sonoma-base/latest"
        $null = New-Item -ItemType SymbolicLink -Path $tag -Target $digestDir
        $image = Import-MacVmImage -Name sonoma-oci -TartPath $tag
        $image.Kind | Should -Be 'MacOS'
        $image.Digest | Should -Be (Get-MacVmImage -Name sonoma).Digest -Because 'the digest is over the content, not the path'
    }

    It 'refuses a VM made from a macOS image with the QEMU driver, naming the driver to use' {
        $before = @(Get-ChildItem -Force "$script:Store/vms" -ErrorAction Ignore).Count
        { New-MacVm -Name mac1 -Image sonoma -NoStart -ErrorAction Stop } |
            Should -Throw -ErrorId 'NewMacVmInvalidArgument,MacVm.Cmdlets.Commands.NewMacVmCommand' -ExpectedMessage "*'sonoma' is a macOS guest*-Driver Apple*"
        @(Get-ChildItem -Force "$script:Store/vms" -ErrorAction Ignore).Count | Should -Be $before
    }

    It 'refuses <Label> with a clear error and leaves nothing behind' -ForEach @(
        @{ Label = 'a folder that does not exist'; Case = 'missing'; Message = '*is not a folder*~/.tart/vms*' }
        @{ Label = 'a folder without config.json'; Case = 'empty'; Message = '*has no config.json*tart list*' }
        @{ Label = 'a Linux Tart VM'; Case = 'linux'; Message = "*'linux' guest*-Kernel*" }
        @{ Label = 'a config without ecid'; Case = 'noecid'; Message = "*has no 'ecid'*" }
        @{ Label = 'a VM whose disk is missing'; Case = 'nodisk'; Message = '*has no disk.img*tart pull*' }
    ) {
        $path = "$script:Tart/vms/$Case"
        switch ($Case) {
            'empty' { $null = New-Item -ItemType Directory -Force $path }
            'linux' { $null = New-TestTartVm -Path $path -Os linux }
            'noecid' { $null = New-TestTartVm -Path $path -NoEcid }
            'nodisk' { $null = New-TestTartVm -Path $path; Remove-Item "$path/disk.img" }
        }
        $before = Get-ImageFolders
        { Import-MacVmImage -Name broken -TartPath $path -ErrorAction Stop } |
            Should -Throw -ErrorId 'ImportMacVmImageInvalidArgument,MacVm.Cmdlets.Commands.ImportMacVmImageCommand' -ExpectedMessage $Message
        Get-ImageFolders | Should -Be $before
    }

    It 'refuses -TartPath together with -Disk' {
        { Import-MacVmImage -Name both -TartPath "$script:Tart/vms/sonoma-base" -Disk "$script:Tart/vms/sonoma-base/disk.img" -ErrorAction Stop } |
            Should -Throw -ErrorId 'AmbiguousParameterSet,MacVm.Cmdlets.Commands.ImportMacVmImageCommand'
    }
}

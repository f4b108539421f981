# Source manifest. build.ps1 copies it into out/MacVm/ and stamps ModuleVersion from
# Directory.Build.props (VersionPrefix), the one place the version is kept.
@{
    RootModule           = 'MacVm.Cmdlets.dll'
    # Imported first: hooks up the load context that isolates the engine's dependencies.
    NestedModules        = @('MacVm.Loader.dll')
    ModuleVersion        = '0.0.0'
    GUID                 = '5b8c3d0e-6f0a-4f4e-9a57-2f1c9e3b7d41'
    Author               = 'MacVm developers'
    CompanyName          = 'MacVm'
    Copyright            = '(c) MacVm developers. MIT licence.'
    Description          = 'Runs and automates virtual machines for test pipelines: one host process per VM, QEMU and Apple Virtualization drivers, pipeline objects for VMs and images.'
    PowerShellVersion    = '7.4'
    CompatiblePSEditions = @('Core')
    CmdletsToExport      = @(
        'New-MacVm'
        'Get-MacVm'
        'Start-MacVm'
        'Stop-MacVm'
        'Suspend-MacVm'
        'Resume-MacVm'
        'Remove-MacVm'
        'Wait-MacVm'
        'Test-MacVmGuest'
        'Invoke-MacVmGuestCommand'
        'Get-MacVmScreenshot'
        'Save-MacVm'
        'Use-MacVmSnapshot'
        'Restore-MacVmSnapshot'
        'Get-MacVmSnapshot'
        'Remove-MacVmSnapshot'
        'Import-MacVmImage'
        'Get-MacVmImage'
        'Remove-MacVmImage'
        'Connect-MacVmNetwork'
        'Disconnect-MacVmNetwork'
        'Set-MacVmGuestIp'
    )
    FunctionsToExport    = @()
    AliasesToExport      = @()
    VariablesToExport    = @()
    FormatsToProcess     = @('MacVm.Format.ps1xml')
    TypesToProcess       = @('MacVm.Types.ps1xml')
    PrivateData          = @{
        PSData = @{
            Tags       = @('VM', 'QEMU', 'Virtualization', 'macOS', 'Linux', 'Testing')
            ProjectUri = 'https://example.invalid/macvm'
        }
    }
}
